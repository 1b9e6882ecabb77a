// Client authentication the way Microsoft's identity platform does it, in front of
// oidc-provider: several client secrets per client (each can be expired), and
// private_key_jwt with registered certificates found by their thumbprint (x5t#S256 or x5t).
//
// Only clients given credentials through /__test/clients/credentials are checked here;
// the others go straight to oidc-provider. For a checked client, the built-in secret is
// the credential named "default". A request that passes is rewritten to the client's
// built-in secret (client_secret_post) before oidc-provider sees it; one that fails is
// answered 401 invalid_client with the AADSTS code Microsoft sends:
//   7000215 unknown secret, 7000222 expired secret, 700027 bad assertion (unknown key,
//   bad signature, wrong aud/iss/sub, expired, replayed jti), 700024 assertion outside
//   its time window.
//
// Test routes:
//   POST /__test/clients/credentials {client_id, name, secret | certificate (PEM)} -> {name, x5t?}
//   POST /__test/clients/expire      {client_id, name} -> {name}; that credential is refused
//   GET  /__test/clients/log         -> {attempts: [{client_id, method, name, ok, error, assertion}]}
// resetClientAuth() (called by /__test/reset) forgets every registered credential and the log.

import { X509Certificate, constants, createHash, verify } from 'node:crypto';

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const SKEW_S = 300;
const registry = new Map(); // client_id -> {builtin, secrets: Map(value -> cred), certs: Map(thumb -> cred)}
const seenJti = new Set();
const attempts = [];

export class ClientAuthError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function resetClientAuth() {
  registry.clear();
  seenJti.clear();
  attempts.length = 0;
}

function b64url(buffer) {
  return Buffer.from(buffer).toString('base64url');
}

function entryFor(clients, clientId) {
  if (!registry.has(clientId)) {
    const client = clients.find((c) => c.client_id === clientId);
    if (!client) throw new ClientAuthError(404, `no client ${clientId}`);
    const builtin = { name: 'default', expired: false };
    registry.set(clientId, {
      builtin: client.client_secret,
      secrets: new Map([[client.client_secret, builtin]]),
      certs: new Map(),
    });
  }
  return registry.get(clientId);
}

function register(clients, body) {
  const entry = entryFor(clients, String(body.client_id));
  if (typeof body.name !== 'string' || !body.name) throw new ClientAuthError(400, 'name is required');
  const cred = { name: body.name, expired: false };
  if (typeof body.secret === 'string') {
    entry.secrets.set(body.secret, cred);
    return { name: cred.name };
  }
  if (typeof body.certificate !== 'string') throw new ClientAuthError(400, 'secret or certificate is required');
  const cert = new X509Certificate(body.certificate);
  cred.publicKey = cert.publicKey;
  cred.x5t = b64url(createHash('sha1').update(cert.raw).digest());
  cred.x5tS256 = b64url(createHash('sha256').update(cert.raw).digest());
  entry.certs.set(cred.x5tS256, cred);
  entry.certs.set(cred.x5t, cred);
  return { name: cred.name, x5t: cred.x5t, 'x5t#S256': cred.x5tS256 };
}

function expire(clients, body) {
  const entry = entryFor(clients, String(body.client_id));
  const all = [...entry.secrets.values(), ...entry.certs.values()];
  const found = all.filter((cred) => cred.name === body.name);
  if (found.length === 0) throw new ClientAuthError(404, `no credential named ${body.name}`);
  found.forEach((cred) => { cred.expired = true; });
  return { name: body.name };
}

export async function handleClientAuthRoute(clients, route, readJson, req) {
  switch (route) {
    case 'POST /__test/clients/credentials':
      return register(clients, await readJson(req));
    case 'POST /__test/clients/expire':
      return expire(clients, await readJson(req));
    case 'GET /__test/clients/log':
      return { attempts };
    default:
      throw new ClientAuthError(404, `no test route ${route}`);
  }
}

function decodeJson(part) {
  try {
    return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    return null;
  }
}

function checkSignature(header, signed, signature, cred) {
  if (header.alg === 'RS256') return verify('sha256', Buffer.from(signed), cred.publicKey, signature);
  if (header.alg === 'PS256') {
    const key = { key: cred.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 };
    return verify('sha256', Buffer.from(signed), key, signature);
  }
  return false;
}

// The assertion's problem ('' when it is good) and the credential it named.
function checkAssertion(entry, clientId, assertion, audiences) {
  const parts = String(assertion ?? '').split('.');
  const header = parts.length === 3 ? decodeJson(parts[0]) : null;
  const claims = parts.length === 3 ? decodeJson(parts[1]) : null;
  if (!header || !claims) return ['700027: the client assertion is not a JWT', null];
  const cred = entry.certs.get(header['x5t#S256']) ?? entry.certs.get(header.x5t);
  if (!cred) return ['700027: Client assertion contains an invalid signature. [Reason - The key was not found.]', null];
  if (cred.expired) return ['700027: The certificate used to sign the client assertion is expired.', cred];
  const signed = `${parts[0]}.${parts[1]}`;
  if (!checkSignature(header, signed, Buffer.from(parts[2], 'base64url'), cred)) {
    return ['700027: Client assertion failed signature validation.', cred];
  }
  const now = Math.floor(Date.now() / 1000);
  if (claims.iss !== clientId || claims.sub !== clientId) return ['700027: iss and sub must be the client id', cred];
  const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!aud.some((a) => audiences.includes(a))) return ['700027: The audience of the client assertion is not the token endpoint', cred];
  if (typeof claims.exp !== 'number' || claims.exp < now - SKEW_S) return ['700024: Client assertion is not within its valid time range.', cred];
  if (typeof claims.nbf === 'number' && claims.nbf > now + SKEW_S) return ['700024: Client assertion is not within its valid time range.', cred];
  if (typeof claims.jti !== 'string' || seenJti.has(claims.jti)) return ['700027: the client assertion was replayed (jti)', cred];
  seenJti.add(claims.jti);
  return ['', cred];
}

function refuse(ctx, description) {
  const [code] = description.split(':');
  ctx.status = 401;
  ctx.set('Cache-Control', 'no-store');
  ctx.body = {
    error: 'invalid_client',
    error_description: `AADSTS${description}`,
    error_codes: [Number(code)],
  };
}

// Koa middleware for the token and revocation endpoints (after the body was read).
export function clientAuthMiddleware(issuer, paths, readRawBody) {
  return async (ctx, next) => {
    if (ctx.method !== 'POST' || !paths.includes(ctx.path)) return next();
    if (!Buffer.isBuffer(ctx.req.body)) ctx.req.body = await readRawBody(ctx.req);
    const form = new URLSearchParams(ctx.req.body.toString('utf8'));
    const assertion = form.get('client_assertion');
    const asserted = decodeJson(String(assertion ?? '').split('.')[1] ?? '');
    const clientId = form.get('client_id') ?? asserted?.iss;
    const entry = registry.get(clientId);
    if (!entry) return next();
    let problem = '';
    let cred = null;
    let method = 'secret';
    if (form.get('client_assertion_type') === JWT_BEARER) {
      method = 'certificate';
      [problem, cred] = checkAssertion(entry, clientId, assertion, [issuer + paths[0], issuer + ctx.path]);
    } else {
      cred = entry.secrets.get(form.get('client_secret')) ?? null;
      if (!cred) problem = '7000215: Invalid client secret provided.';
      else if (cred.expired) problem = `7000222: The provided client secret keys for app '${clientId}' are expired.`;
    }
    attempts.push({
      client_id: clientId, method, name: cred?.name ?? null, ok: !problem, error: problem || null,
      assertion: assertion ?? null,
    });
    if (problem) return refuse(ctx, problem);
    ['client_assertion', 'client_assertion_type'].forEach((name) => form.delete(name));
    form.set('client_id', clientId);
    form.set('client_secret', entry.builtin);
    ctx.req.body = Buffer.from(form.toString());
    return next();
  };
}
