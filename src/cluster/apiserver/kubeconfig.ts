// A kubeconfig for the embedded API server with a bearer token. client-go (kubectl) sends a
// kubeconfig's token only over TLS, so for a server started in this process (or when its
// certificate is given) the kubeconfig points at the same port over https and trusts the server's
// self-signed certificate; the server answers both http and https on one port.
import { stringify } from 'yaml';
import { servingCertFor } from './http/tls.js';

export function kubeconfigYaml(url: string, token: string, context = 'btx-local', caCert?: string): string {
  const ca = caCert ?? servingCertFor(url);
  const cluster: Record<string, string> = ca
    ? {
        server: url.replace(/^http:/, 'https:'),
        'certificate-authority-data': Buffer.from(ca).toString('base64'),
      }
    : { server: url };
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: context, cluster }],
    users: [{ name: context, user: { token } }],
    contexts: [{ name: context, context: { cluster: context, user: context, namespace: 'default' } }],
    'current-context': context,
    preferences: {},
  });
}
