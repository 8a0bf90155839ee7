// HTTP plumbing: bodies, media types, JSON answers and Status errors.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseYaml } from 'yaml';
import { ApiError, badRequest, unsupportedMediaType } from '../apimachinery/errors.js';
import { checkNestingDepth } from './nesting.js';
import { decodeProtobuf, PROTOBUF } from './protobuf.js';

const MAX_BODY_BYTES = 8 * 1024 * 1024;

export async function readBody(req: IncomingMessage): Promise<string> {
  return (await readRawBody(req)).toString('utf8');
}

export async function readRawBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES)
      throw new ApiError(413, 'RequestEntityTooLarge', 'Request entity too large: limit is 3145728');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

export function mediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0]!.trim().toLowerCase();
}

/** A create/update/delete body: JSON, YAML, or protobuf for the kinds protobuf.ts decodes. */
export function parseObjectBody(contentType: string | undefined, raw: Buffer): unknown {
  const type = mediaType(contentType);
  if (type === PROTOBUF) return raw.length ? decodeProtobuf(raw) : undefined;
  const body = raw.toString('utf8');
  if (type !== '' && type !== 'application/json' && type !== 'application/yaml' && type !== '*/*')
    throw unsupportedMediaType([
      'application/json',
      'application/yaml',
      'application/vnd.kubernetes.protobuf',
    ]);
  if (body.trim() === '') return undefined;
  let parsed: unknown;
  try {
    parsed = type === 'application/yaml' ? parseYaml(body) : JSON.parse(body);
  } catch (err) {
    throw badRequest(`the object provided is unrecognized: ${(err as Error).message}`);
  }
  checkNestingDepth(parsed);
  return parsed;
}

export interface AcceptedAs {
  /** meta.k8s.io version of the Table asked for, if any. */
  table?: string;
  partialMetadata?: boolean;
}

/** What representation an Accept header asks for (Table, PartialObjectMetadata or plain JSON). */
export function parseAccept(header: string | undefined): AcceptedAs | 'unacceptable' {
  if (!header) return {};
  let json = false;
  for (const part of header.split(',')) {
    const [type, ...params] = part.split(';').map((s) => s.trim());
    const p = Object.fromEntries(params.map((x) => x.split('=').map((s) => s.trim()) as [string, string]));
    if (type === 'application/json' || type === '*/*' || type === 'application/*') {
      if (p.as === 'Table' && p.g === 'meta.k8s.io' && (p.v === 'v1' || p.v === 'v1beta1'))
        return { table: p.v };
      if ((p.as === 'PartialObjectMetadata' || p.as === 'PartialObjectMetadataList') && p.g === 'meta.k8s.io')
        return { partialMetadata: true };
      if (!p.as) json = true;
    }
    if (type === 'application/yaml') json = true;
  }
  return json ? {} : 'unacceptable';
}

export function sendJson(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-cache, private',
  });
  res.end(text);
}

export function sendError(res: ServerResponse, err: ApiError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, err.code, err.toStatus());
}

export function sendText(res: ServerResponse, code: number, text: string): void {
  res.writeHead(code, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

export function sendBytes(res: ServerResponse, code: number, contentType: string, body: Buffer): void {
  res.writeHead(code, {
    'Content-Type': contentType,
    'Content-Length': body.length,
    'Cache-Control': 'no-cache, private',
  });
  res.end(body);
}
