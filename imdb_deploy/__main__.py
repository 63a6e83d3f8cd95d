from imdb_deploy.cli import main

main()
