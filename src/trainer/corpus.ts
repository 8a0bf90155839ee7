// A domain's source text as a stream of documents, read incrementally: a 5 GB .jsonl never becomes
// one string. Documents are .jsonl lines ({"text": ...}); paragraphs (blank-line separated) of
// .txt/.md files, or their lines when a file has no blank line at all (one example per line); any
// piece of text longer than MAX_DOCUMENT_BYTES is cut into pieces of at most that size. The same
// rules decide the held-out split (by document hash), so they are recorded in the manifest.
//
// Parts (`--part i/n`, an Indexed Job's pods): line-unit files (.jsonl, line-mode .txt) are cut into
// n byte ranges and part i owns the lines that START in its range; a paragraph-mode file goes whole to
// one part (files dealt round-robin by size), since a paragraph's start cannot be found from the middle.
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { extname, join, relative } from 'node:path';
import { InputError } from './inputError.js';

export const EXTENSIONS = new Set(['.txt', '.md', '.jsonl']);
/** Documents longer than this (UTF-8 bytes) are cut into pieces, so memory never holds a huge string. */
export const MAX_DOCUMENT_BYTES = 1 << 20;
/** A .jsonl line is parsed whole; longer lines are refused rather than read into memory. */
export const MAX_JSONL_LINE_BYTES = 256 << 20;
const READ_CHUNK = 1 << 20;

/** How a file is cut into documents. */
export type DocumentUnit = 'jsonl-line' | 'paragraph' | 'line';

export interface SourceFile {
  /** Relative to the domain's data path ('' when the path is the file itself). */
  path: string;
  size: number;
  mtimeMs: number;
}

export interface Part {
  index: number;
  count: number;
}

/** Every .txt/.md/.jsonl file under `root` (a file or a folder, recursively), sorted, with size and mtime. */
export async function listSources(root: string): Promise<SourceFile[]> {
  const info = await stat(root).catch((err: unknown) => {
    throw new InputError(`data path ${root} cannot be read`, { cause: err });
  });
  if (info.isFile()) return [{ path: '', size: info.size, mtimeMs: info.mtimeMs }];
  const out: SourceFile[] = [];
  const walk = async (dir: string): Promise<void> => {
    const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const entry of entries) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if (EXTENSIONS.has(extname(entry.name).toLowerCase())) {
        const s = await stat(full);
        out.push({ path: relative(root, full), size: s.size, mtimeMs: s.mtimeMs });
      }
    }
  };
  await walk(root);
  return out;
}

export function sourcePath(root: string, file: SourceFile): string {
  return file.path === '' ? root : join(root, file.path);
}

function isJsonl(path: string): boolean {
  return extname(path).toLowerCase() === '.jsonl';
}

const isBlank = (line: string) => line.trim() === '';

/** Lines of a byte range of a file, as pieces of at most MAX_DOCUMENT_BYTES (`end`: the piece ends its line). */
async function* linePieces(
  path: string,
  start: number,
  end: number,
  pieceBytes: number,
): AsyncGenerator<{ text: Buffer; lineStart: number; endsLine: boolean }> {
  // Part i owns the lines starting in [start, end): skip the line that straddles `start` by beginning
  // one byte early and dropping everything up to the first newline.
  let skipping = start > 0;
  let pos = skipping ? start - 1 : start;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let lineStart = pos;
  for await (const chunk of createReadStream(path, { start: pos, highWaterMark: READ_CHUNK })) {
    const buf = chunk as Buffer;
    let at = 0;
    while (at < buf.length) {
      const nl = buf.indexOf(10, at);
      const stop = nl === -1 ? buf.length : nl;
      if (skipping) {
        if (nl === -1) {
          at = buf.length;
          continue;
        }
        skipping = false;
        at = nl + 1;
        lineStart = pos + at;
        if (lineStart >= end) return;
        continue;
      }
      // Text up to `stop`, emitted in pieces of at most pieceBytes (cut before a UTF-8 continuation byte).
      let from = at;
      while (pendingBytes + (stop - from) > pieceBytes) {
        let cut = from + (pieceBytes - pendingBytes);
        while (cut > from && (buf[cut]! & 0xc0) === 0x80) cut--;
        if (cut === from && pendingBytes === 0) cut = from + (pieceBytes - pendingBytes); // no boundary: cut anyway
        pending.push(buf.subarray(from, cut));
        yield { text: Buffer.concat(pending), lineStart, endsLine: false };
        pending = [];
        pendingBytes = 0;
        from = cut;
      }
      if (stop > from) {
        pending.push(buf.subarray(from, stop));
        pendingBytes += stop - from;
      }
      if (nl === -1) {
        at = buf.length;
        continue;
      }
      yield { text: Buffer.concat(pending), lineStart, endsLine: true };
      pending = [];
      pendingBytes = 0;
      at = nl + 1;
      lineStart = pos + at;
      if (lineStart >= end) return;
    }
    pos += buf.length;
  }
  if (pendingBytes > 0 && !skipping) yield { text: Buffer.concat(pending), lineStart, endsLine: true };
}

/** Whether a text file has a blank line between two lines of text (paragraph mode); stops at the first. */
export async function hasBlankLine(path: string): Promise<boolean> {
  let seenText = false;
  let blankAfterText = false;
  for await (const piece of linePieces(path, 0, Infinity, MAX_DOCUMENT_BYTES)) {
    if (piece.endsLine && isBlank(piece.text.toString('utf8'))) {
      if (seenText) blankAfterText = true;
      continue;
    }
    if (blankAfterText) return true;
    seenText = true;
  }
  return false;
}

export async function documentUnit(path: string): Promise<DocumentUnit> {
  if (isJsonl(path)) return 'jsonl-line';
  return (await hasBlankLine(path)) ? 'paragraph' : 'line';
}

/** Cut a string into pieces of at most `max` UTF-8 bytes (never inside a surrogate pair). */
function cutText(text: string, max: number): string[] {
  if (Buffer.byteLength(text) <= max) return [text];
  const out: string[] = [];
  let at = 0;
  while (at < text.length) {
    // At most max/3 code units is at most max bytes; grow while it fits.
    let end = Math.min(text.length, at + Math.max(1, Math.floor(max / 3)));
    const code = text.charCodeAt(end - 1);
    if (end < text.length && code >= 0xd800 && code <= 0xdbff) end--;
    out.push(text.slice(at, end));
    at = end;
  }
  return out;
}

/** The documents of one file (or of the part of it this part owns), in file order. */
export async function* fileDocuments(
  path: string,
  unit: DocumentUnit,
  range: { start: number; end: number } = { start: 0, end: Infinity },
): AsyncGenerator<string> {
  if (unit === 'jsonl-line') {
    let lineNo = 0;
    for await (const piece of linePieces(path, range.start, range.end, MAX_JSONL_LINE_BYTES)) {
      lineNo++;
      if (!piece.endsLine) {
        throw new Error(
          `${path}: a line at byte ${piece.lineStart} is longer than ${MAX_JSONL_LINE_BYTES} bytes`,
        );
      }
      const line = piece.text.toString('utf8');
      if (isBlank(line)) continue;
      const where = range.start === 0 ? `${path}:${lineNo}` : `${path} (line at byte ${piece.lineStart})`;
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch (err) {
        throw new Error(`${where}: not JSON`, { cause: err });
      }
      const t = (parsed as { text?: unknown } | null)?.text;
      if (typeof t !== 'string') throw new Error(`${where}: no string "text" field`);
      if (t.trim() === '') continue;
      yield* cutText(t, MAX_DOCUMENT_BYTES);
    }
    return;
  }
  if (unit === 'line') {
    for await (const piece of linePieces(path, range.start, range.end, MAX_DOCUMENT_BYTES)) {
      const text = piece.text.toString('utf8').replace(/\r$/, '');
      if (!isBlank(text)) yield text;
    }
    return;
  }
  // Paragraphs: runs of non-blank lines joined by '\n', flushed early when they reach the size cap.
  let lines: string[] = [];
  let bytes = 0;
  for await (const piece of linePieces(path, 0, Infinity, MAX_DOCUMENT_BYTES)) {
    const text = piece.text.toString('utf8').replace(/\r$/, '');
    if (piece.endsLine && isBlank(text) && bytes === 0) continue;
    if (piece.endsLine && isBlank(text)) {
      yield lines.join('\n');
      lines = [];
      bytes = 0;
      continue;
    }
    if (bytes + piece.text.length + 1 > MAX_DOCUMENT_BYTES && lines.length > 0) {
      yield lines.join('\n');
      lines = [];
      bytes = 0;
    }
    lines.push(text);
    bytes += piece.text.length + 1;
    if (!piece.endsLine) {
      // A piece of an over-long line is a document of its own.
      yield lines.join('\n');
      lines = [];
      bytes = 0;
    }
  }
  if (bytes > 0) yield lines.join('\n');
}

/**
 * What part `part` reads of each file: line-unit files in byte ranges, paragraph files whole (dealt
 * round-robin, largest first). Deterministic from the listing, so parts never overlap or miss.
 */
export function partRanges(
  files: readonly { size: number; unit: DocumentUnit }[],
  part: Part,
): ({ start: number; end: number } | null)[] {
  const whole = files
    .map((f, i) => ({ i, size: f.size, unit: f.unit }))
    .filter((f) => f.unit === 'paragraph')
    .sort((a, b) => b.size - a.size || a.i - b.i);
  const owner = new Map(whole.map((f, k) => [f.i, k % part.count]));
  return files.map((f, i) => {
    if (f.unit === 'paragraph') return owner.get(i) === part.index ? { start: 0, end: Infinity } : null;
    const start = Math.floor((f.size * part.index) / part.count);
    const end =
      part.index === part.count - 1 ? Infinity : Math.floor((f.size * (part.index + 1)) / part.count);
    return start < end ? { start, end } : null;
  });
}

export const DOCUMENT_RULES =
  '.jsonl: one document per line (its "text"); .txt/.md: paragraphs separated by blank lines, or one ' +
  'document per line when the file has no blank line; documents over 1 MiB of UTF-8 are cut into pieces ' +
  '(paragraphs at line ends, lines at character boundaries)';
