// Rows of JSONL on a stream ({"id": ..., "text": ...} per line), as classify.mjs and browser.mjs read stdin:
// blank lines skipped, a line without a string "text" an error naming its line, ids "stdin:N" where a row has none.
import { createInterface } from 'node:readline';

export async function readRows(stream) {
    const rows = [];
    let number = 0;
    for await (const line of createInterface({ input: stream, crlfDelay: Infinity })) {
        number++;
        if (!line.trim()) continue;
        const row = JSON.parse(line);
        if (typeof row.text !== 'string') throw new Error(`line ${number}: field "text" missing`);
        rows.push({ id: row.id ?? `stdin:${number}`, text: row.text });
    }
    return rows;
}
