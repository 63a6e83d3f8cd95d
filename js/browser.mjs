// Classify reviews in a real headless Chromium: transformers.js on the WASM backend, in js/browser/index.html.
//
//   node js/browser.mjs FOLDER [--dtype fp32|q8] [--screenshot page.png] [--chromium /usr/bin/chromium] \
//       < reviews.jsonl > predictions.jsonl
//
// A static server on 127.0.0.1 (a free port) serves the page, this folder's node_modules (the library and ONNX
// Runtime's .wasm files) and FOLDER as /models/NAME/: nothing comes from a CDN or the Hub. Input and output lines
// are those of js/classify.mjs; one review per call.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { readRows } from './rows.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const TYPES = {
    '.html': 'text/html; charset=utf-8',
    '.js': 'text/javascript; charset=utf-8',
    '.mjs': 'text/javascript; charset=utf-8',
    '.json': 'application/json',
    '.wasm': 'application/wasm',
    '.onnx': 'application/octet-stream',
    '.txt': 'text/plain; charset=utf-8',
};
// Chromium without the calls home a test machine cannot make (and should not).
const CHROMIUM_ARGS = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
];

function parseArgs(argv) {
    const args = { folder: null, dtype: 'q8', screenshot: null, chromium: '/usr/bin/chromium', timeout: 600 };
    for (let i = 0; i < argv.length; i++) {
        const arg = argv[i];
        if (arg === '--dtype') args.dtype = argv[++i];
        else if (arg === '--screenshot') args.screenshot = argv[++i];
        else if (arg === '--chromium') args.chromium = argv[++i];
        else if (arg === '--timeout') args.timeout = Number(argv[++i]);
        else if (!args.folder) args.folder = arg;
        else throw new Error(`unexpected argument ${JSON.stringify(arg)}`);
    }
    if (!args.folder) throw new Error('name the exported folder: node js/browser.mjs FOLDER');
    return args;
}

/** A static server for three roots: the page, node_modules, and the model folder under /models/NAME/. */
function serve(folder) {
    const name = path.basename(folder);
    const roots = [
        ['/node_modules/', path.join(HERE, 'node_modules')],
        [`/models/${name}/`, folder],
        ['/', path.join(HERE, 'browser')],
    ];
    const server = createServer(async (request, response) => {
        const url = new URL(request.url, 'http://127.0.0.1');
        let pathname = decodeURIComponent(url.pathname);
        if (pathname === '/') pathname = '/index.html';
        const [prefix, root] = roots.find(([p]) => pathname.startsWith(p));
        const file = path.resolve(root, pathname.slice(prefix.length));
        try {
            if (!file.startsWith(path.resolve(root) + path.sep)) throw new Error('outside the root');
            const info = await stat(file);
            if (!info.isFile()) throw new Error('not a file');
            response.writeHead(200, {
                'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream',
                'Content-Length': info.size,
                'Cache-Control': 'no-store',
            });
            createReadStream(file).pipe(response);
        } catch {
            response.writeHead(404, { 'Content-Type': 'text/plain' });
            response.end('not found');
        }
    });
    return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, name })));
}

async function main() {
    const args = parseArgs(process.argv.slice(2));
    const rows = await readRows(process.stdin);
    const { server, name } = await serve(path.resolve(args.folder));
    const port = server.address().port;
    const browser = await chromium.launch({ executablePath: args.chromium, args: CHROMIUM_ARGS, headless: true });
    try {
        const page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
        const failed = [];
        // Anything the page asks of another host is a failure: the check is that everything is served here.
        await page.route('**/*', (route) => {
            const host = new URL(route.request().url()).hostname;
            if (host === '127.0.0.1') return route.continue();
            failed.push(route.request().url());
            return route.abort();
        });
        page.on('console', (message) => {
            if (message.type() === 'error') process.stderr.write(`page: ${message.text()}\n`);
        });
        await page.goto(`http://127.0.0.1:${port}/index.html?model=${encodeURIComponent(name)}&dtype=${args.dtype}`);
        await page.waitForFunction(() => window.modelReady || window.modelError, null, { timeout: args.timeout * 1000 });
        const error = await page.evaluate(() => window.modelError);
        if (error) throw new Error(`the page could not load the model: ${error}`);
        const results = await page.evaluate((items) => window.classifyRows(items), rows);
        if (failed.length) throw new Error(`the page asked other hosts: ${failed.join(', ')}`);
        for (const result of results) process.stdout.write(JSON.stringify(result) + '\n');
        if (args.screenshot) await page.screenshot({ path: args.screenshot, fullPage: false });
        const status = await page.textContent('#status');
        process.stderr.write(`${status}\n`);
    } finally {
        await browser.close();
        server.close();
    }
}

main().catch((error) => {
    process.stderr.write(`browser.mjs: ${error.message}\n`);
    process.exit(1);
});
