// The page's model: ?model=NAME (a folder served under /models/) and ?dtype=fp32|q8, run on the WASM backend.
// Everything comes from this server: the library from /node_modules, ONNX Runtime's .wasm files too (no CDN).
import { env, pipeline } from '/node_modules/@huggingface/transformers/dist/transformers.js';

const params = new URLSearchParams(location.search);
const model = params.get('model') ?? 'model';
const dtype = params.get('dtype') ?? 'q8';
const status = document.getElementById('status');
const rows = document.getElementById('rows');

env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = '/models/';
env.useBrowserCache = false; // read the served files every time, never an older copy
env.useWasmCache = false;
const ort = '/node_modules/onnxruntime-web/dist/';
env.backends.onnx.wasm.wasmPaths = {
    mjs: `${ort}ort-wasm-simd-threaded.asyncify.mjs`,
    wasm: `${ort}ort-wasm-simd-threaded.asyncify.wasm`,
};

function show(text, result) {
    const tr = document.createElement('tr');
    const cells = [text, result.label, result.score.toFixed(4)];
    cells.forEach((value, i) => {
        const td = document.createElement('td');
        td.textContent = value;
        if (i === 0) td.className = 'text';
        if (i === 1) td.className = result.label;
        tr.appendChild(td);
    });
    rows.appendChild(tr);
}

async function main() {
    const started = performance.now();
    const classifier = await pipeline('text-classification', model, { dtype, device: 'wasm' });
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    status.textContent = `${model} (${dtype}, WASM, onnxruntime-web ${env.backends.onnx.versions?.web ?? '?'}) loaded in ${seconds} s`;

    // One review per call, as imdb-deploy's Predictor runs dynamic INT8 (see js/classify.mjs).
    window.classifyRows = async (items, { display = 20 } = {}) => {
        const out = [];
        for (const item of items) {
            const [scores] = await classifier([item.text], { top_k: null });
            const result = {
                id: item.id,
                label: scores[0].label,
                score: scores[0].score,
                probabilities: Object.fromEntries(scores.map((s) => [s.label, s.score])),
            };
            if (out.length < display) show(item.text, result);
            out.push(result);
        }
        return out;
    };
    document.getElementById('form').addEventListener('submit', async (event) => {
        event.preventDefault();
        const text = document.getElementById('review').value;
        await window.classifyRows([{ id: 'typed', text }]);
    });
    document.getElementById('go').disabled = false;
    window.modelReady = true;
}

main().catch((error) => {
    status.textContent = `failed: ${error.message}`;
    window.modelError = String(error.message ?? error);
});
