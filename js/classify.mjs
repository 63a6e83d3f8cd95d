// Classify reviews with transformers.js in Node, from an exported folder in transformers.js's layout.
//
//   node js/classify.mjs FOLDER [--dtype fp32|q8] [--batch-size N] < reviews.jsonl > predictions.jsonl
//
// FOLDER holds config.json, tokenizer.json, tokenizer_config.json and onnx/model.onnx (dtype fp32) or
// onnx/model_quantized.onnx (dtype q8): what `python -m imdb_deploy.portable` writes. Each input line is a JSON
// object with "text" (and optionally "id"); each output line has id, label, score and both probabilities, in
// input order. The default --batch-size 1 runs one review per call, as imdb-deploy's Predictor runs dynamic
// INT8 (its activation scales come from the review alone); fp32 gives the same answers batched.
import path from 'node:path';
import { env, pipeline } from '@huggingface/transformers';
import { readRows } from './rows.mjs';

function parseArgs(argv) {
    const args = { folder: null, dtype: 'fp32', batchSize: 1 };
    for (let i = 0; i < argv.length; i++) {
        const arg = argv[i];
        if (arg === '--dtype') args.dtype = argv[++i];
        else if (arg === '--batch-size') args.batchSize = Number(argv[++i]);
        else if (arg === '-h' || arg === '--help') args.help = true;
        else if (!args.folder) args.folder = arg;
        else throw new Error(`unexpected argument ${JSON.stringify(arg)}`);
    }
    if (!args.help && !args.folder) throw new Error('name the exported folder: node js/classify.mjs FOLDER');
    if (!Number.isInteger(args.batchSize) || args.batchSize < 1) throw new Error('--batch-size: use 1 or more');
    return args;
}

async function main() {
    process.stdout.on('error', (error) => process.exit(error.code === 'EPIPE' ? 0 : 1));
    const args = parseArgs(process.argv.slice(2));
    if (args.help) {
        process.stderr.write('usage: node js/classify.mjs FOLDER [--dtype fp32|q8] [--batch-size N] < in.jsonl\n');
        return;
    }
    // The library's own way to a local model: a models root, a model id under it, and no Hub.
    const folder = path.resolve(args.folder);
    env.localModelPath = path.dirname(folder) + path.sep;
    env.allowRemoteModels = false;
    const classifier = await pipeline('text-classification', path.basename(folder), { dtype: args.dtype });
    const rows = await readRows(process.stdin);
    for (let start = 0; start < rows.length; start += args.batchSize) {
        const batch = rows.slice(start, start + args.batchSize);
        // top_k null: every label's probability, most probable first.
        const outputs = await classifier(
            batch.map((row) => row.text),
            { top_k: null },
        );
        batch.forEach((row, i) => {
            const scores = outputs[i];
            const probabilities = Object.fromEntries(scores.map((s) => [s.label, s.score]));
            process.stdout.write(
                JSON.stringify({ id: row.id, label: scores[0].label, score: scores[0].score, probabilities }) + '\n',
            );
        });
    }
}

main().catch((error) => {
    process.stderr.write(`classify.mjs: ${error.message}\n`);
    process.exit(1);
});
