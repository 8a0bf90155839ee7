// A self-signed serving certificate for the API server (ECDSA P-256, SAN 127.0.0.1 and localhost),
// written as DER by hand so no tool or package is needed. kubectl sends a kubeconfig's bearer token
// only over TLS (client-go drops user credentials for plain http), so kubeconfigs point at https
// with this certificate as their certificate authority.
import { createPrivateKey, generateKeyPairSync, randomBytes, sign, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

function len(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  while (n > 0) {
    bytes.unshift(n & 0xff);
    n >>= 8;
  }
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), len(body.length), body]);
}

const seq = (...c: Buffer[]): Buffer => tlv(0x30, ...c);

function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const bytes = [parts[0]! * 40 + parts[1]!];
  for (const p of parts.slice(2)) {
    const enc: number[] = [p & 0x7f];
    let v = p >> 7;
    while (v > 0) {
      enc.unshift((v & 0x7f) | 0x80);
      v >>= 7;
    }
    bytes.push(...enc);
  }
  return tlv(0x06, Buffer.from(bytes));
}

function utcTime(d: Date): Buffer {
  const p = (n: number): string => String(n).padStart(2, '0');
  const s = `${p(d.getUTCFullYear() % 100)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
  return tlv(0x17, Buffer.from(s, 'ascii'));
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return seq(oid(id), ...(critical ? [tlv(0x01, Buffer.from([0xff]))] : []), tlv(0x04, value));
}

function pem(label: string, der: Buffer): string {
  const b64 = der
    .toString('base64')
    .match(/.{1,64}/g)!
    .join('\n');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

export interface ServingCert {
  cert: string;
  key: string;
}

export function generateServingCert(commonName = 'btx-apiserver'): ServingCert {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const serial = randomBytes(16);
  // Positive and minimally encoded: a DER INTEGER may not start with 0x00 unless the next bit is set,
  // and OpenSSL refuses such a certificate (ERR_OSSL_ASN1_ILLEGAL_PADDING), 1 time in 256 otherwise.
  serial[0] = (serial[0]! & 0x7f) | 0x40;
  const ecdsaSha256 = seq(oid('1.2.840.10045.4.3.2'));
  const name = seq(tlv(0x31, seq(oid('2.5.4.3'), tlv(0x0c, Buffer.from(commonName, 'utf8')))));
  const now = Date.now();
  const validity = seq(utcTime(new Date(now - 3600_000)), utcTime(new Date(now + 10 * 365 * 24 * 3600_000)));
  const extensions = tlv(
    0xa3,
    seq(
      extension('2.5.29.19', true, seq(tlv(0x01, Buffer.from([0xff])))),
      // digitalSignature + keyCertSign
      extension('2.5.29.15', true, tlv(0x03, Buffer.from([0x02, 0x84]))),
      extension('2.5.29.37', false, seq(oid('1.3.6.1.5.5.7.3.1'))),
      extension(
        '2.5.29.17',
        false,
        seq(tlv(0x87, Buffer.from([127, 0, 0, 1])), tlv(0x82, Buffer.from('localhost', 'ascii'))),
      ),
    ),
  );
  const tbs = seq(
    tlv(0xa0, tlv(0x02, Buffer.from([2]))),
    tlv(0x02, serial),
    ecdsaSha256,
    name,
    validity,
    name,
    spki,
    extensions,
  );
  const signature = sign('sha256', tbs, privateKey);
  const der = seq(tbs, ecdsaSha256, tlv(0x03, Buffer.concat([Buffer.from([0]), signature])));
  return {
    cert: pem('CERTIFICATE', der),
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
  };
}

/** The serving certificate kept in dataDir, so kubeconfigs written earlier stay valid across restarts. */
export function loadOrCreateServingCert(dataDir: string): ServingCert {
  const certPath = join(dataDir, 'apiserver.crt');
  const keyPath = join(dataDir, 'apiserver.key');
  if (existsSync(certPath) && existsSync(keyPath)) {
    try {
      const cert = readFileSync(certPath, 'utf8');
      const key = readFileSync(keyPath, 'utf8');
      const x509 = new X509Certificate(cert);
      if (
        Date.parse(x509.validTo) > Date.now() + 24 * 3600_000 &&
        x509.checkPrivateKey(createPrivateKey(key))
      )
        return { cert, key };
    } catch {
      // unreadable or mismatched: make a new one
    }
  }
  const fresh = generateServingCert();
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(keyPath, fresh.key, { mode: 0o600 });
  writeFileSync(certPath, fresh.cert);
  return fresh;
}

/** Certificates of the servers started in this process, by their http URL, for kubeconfigYaml. */
const servingCerts = new Map<string, string>();

export function rememberServingCert(url: string, cert: string): void {
  servingCerts.set(url, cert);
}

export function forgetServingCert(url: string): void {
  servingCerts.delete(url);
}

export function servingCertFor(url: string): string | undefined {
  return servingCerts.get(url.replace(/^https:/, 'http:').replace(/\/+$/, ''));
}
