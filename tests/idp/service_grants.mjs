// Test-only application grants for the test provider (tests/idp/server.mjs):
//
//   client_credentials (RFC 6749 §4.4), as Microsoft's app-only tokens: the client
//     authenticates with client_id/client_secret (body or HTTP Basic); the scope must be
//     one `<resource>/.default`; the answer carries an access token and expires_in only.
//   urn:ietf:params:oauth:grant-type:jwt-bearer (RFC 7523), as Google's domain-wide
//     delegation: the assertion is an RS256 JWT signed with a service account's key,
//     iss = the account's client_email, aud = this provider's token URL, sub = the mailbox,
//     scope = what delegation must cover; at most an hour between iat and exp.
//
// Errors follow Google's: a bad signature or a revoked key is invalid_grant "Invalid JWT
// Signature.", a wrong audience or times invalid_grant "Invalid JWT: ...", scopes beyond the
// delegation unauthorized_client, and a subject whose delegation was withdrawn (a suspended
// user, one outside the domain) invalid_grant "Invalid email or User ID".
//
// Test hooks (JSON), routed here by server.mjs:
//   POST /__test/service/accounts {client_email?, scopes?} -> Google's JSON key file
//        {type, client_email, client_id, private_key_id, private_key, token_uri}; `scopes`
//        (space separated) is what domain-wide delegation covers (default: any scope).
//   POST /__test/service/delegation {client_email, sub, allowed} -> {sub, allowed}
//   POST /__test/service/revoke-key {client_email} -> {revoked}: its key signs nothing more.
//   GET  /__test/service/stats -> {client_credentials_requests, client_credentials_ok,
//        jwt_bearer_requests, jwt_bearer_ok, subjects: {sub: tokens minted}}

import { generateKeyPairSync, randomBytes, verify } from 'node:crypto';
import * as querystring from 'node:querystring';

export const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const MAX_ASSERTION_S = 3600;
const SKEW_S = 300;

const serviceAccounts = new Map(); // client_email -> {publicKey, keyId, clientId, scopes, revoked, withdrawn}
const stats = {};

export function resetServiceStats() {
  Object.assign(stats, {
    client_credentials_requests: 0,
    client_credentials_ok: 0,
    jwt_bearer_requests: 0,
    jwt_bearer_ok: 0,
    subjects: {},
  });
}
resetServiceStats();

export function isServiceGrant(grantType) {
  return grantType === 'client_credentials' || grantType === JWT_BEARER;
}

function answer(ctx, status, body) {
  ctx.status = status;
  ctx.type = 'application/json';
  ctx.set('Cache-Control', 'no-store');
  ctx.body = body;
}

function refuse(ctx, status, error, description) {
  answer(ctx, status, { error, error_description: description });
}

function issued(ctx, ttlS, scope) {
  const token = `at-${randomBytes(24).toString('base64url')}`;
  answer(ctx, 200, { access_token: token, token_type: 'Bearer', expires_in: ttlS, scope });
}

// Handle one token request of an application grant; `clients` maps client_id -> secret.
export function serviceGrant(ctx, raw, clients, issuer, ttlS) {
  const form = querystring.parse(raw.toString('utf8'));
  if (form.grant_type === 'client_credentials') return clientCredentials(ctx, form, clients, ttlS);
  return jwtBearer(ctx, form, issuer, ttlS);
}

function basicCredentials(ctx) {
  const header = ctx.get('authorization');
  if (!header.startsWith('Basic ')) return [undefined, undefined];
  const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
  const at = decoded.indexOf(':');
  return [decodeURIComponent(decoded.slice(0, at)), decodeURIComponent(decoded.slice(at + 1))];
}

function clientCredentials(ctx, form, clients, ttlS) {
  stats.client_credentials_requests += 1;
  const [basicId, basicSecret] = basicCredentials(ctx);
  const clientId = String(form.client_id ?? basicId ?? '');
  const secret = String(form.client_secret ?? basicSecret ?? '');
  if (!clients.has(clientId) || clients.get(clientId) !== secret) {
    return refuse(ctx, 401, 'invalid_client', 'AADSTS7000215: Invalid client secret provided.');
  }
  const scope = String(form.scope ?? '');
  if (!/^https:\/\/[^ ]+\/\.default$/.test(scope)) {
    return refuse(ctx, 400, 'invalid_scope', 'AADSTS1002012: scope must be one <resource>/.default');
  }
  stats.client_credentials_ok += 1;
  return issued(ctx, ttlS, scope);
}

function decodePart(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

function jwtBearer(ctx, form, issuer, ttlS) {
  stats.jwt_bearer_requests += 1;
  const parts = String(form.assertion ?? '').split('.');
  let header;
  let claims;
  try {
    if (parts.length !== 3) throw new Error('not a compact JWS');
    [header, claims] = [decodePart(parts[0]), decodePart(parts[1])];
  } catch {
    return refuse(ctx, 400, 'invalid_grant', 'Invalid JWT: the assertion is not a JWT');
  }
  const account = serviceAccounts.get(claims.iss);
  if (account === undefined) {
    return refuse(ctx, 401, 'invalid_client', 'The OAuth client was not found.');
  }
  const signed = Buffer.from(`${parts[0]}.${parts[1]}`);
  const good = header.alg === 'RS256'
    && verify('RSA-SHA256', signed, account.publicKey, Buffer.from(parts[2], 'base64url'));
  if (!good || account.revoked) {
    return refuse(ctx, 400, 'invalid_grant', 'Invalid JWT Signature.');
  }
  if (claims.aud !== `${issuer}/token`) {
    return refuse(ctx, 400, 'invalid_grant', 'Invalid JWT: audience is not the token URL');
  }
  const now = Date.now() / 1000;
  const timely = Number.isFinite(claims.iat) && Number.isFinite(claims.exp)
    && claims.exp - claims.iat <= MAX_ASSERTION_S && claims.exp > now - SKEW_S
    && claims.iat < now + SKEW_S;
  if (!timely) {
    return refuse(ctx, 400, 'invalid_grant',
      'Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.');
  }
  const scopes = String(claims.scope ?? '').split(' ').filter(Boolean);
  const beyond = account.scopes && scopes.some((s) => !account.scopes.has(s));
  if (scopes.length === 0 || beyond) {
    return refuse(ctx, 401, 'unauthorized_client',
      'Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.');
  }
  if (typeof claims.sub !== 'string' || account.withdrawn.has(claims.sub)) {
    return refuse(ctx, 400, 'invalid_grant', 'Invalid email or User ID');
  }
  stats.jwt_bearer_ok += 1;
  stats.subjects[claims.sub] = (stats.subjects[claims.sub] ?? 0) + 1;
  return issued(ctx, ttlS, scopes.join(' '));
}

function createServiceAccount(body, issuer) {
  const email = String(body.client_email ?? `sa-${randomBytes(4).toString('hex')}@test.iam`);
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyId = randomBytes(20).toString('hex');
  const clientId = String(BigInt(`0x${randomBytes(8).toString('hex')}`));
  serviceAccounts.set(email, {
    publicKey,
    keyId,
    clientId,
    scopes: body.scopes ? new Set(String(body.scopes).split(' ')) : null,
    revoked: false,
    withdrawn: new Set(),
  });
  return {
    type: 'service_account',
    project_id: 'tokenbroker-test',
    private_key_id: keyId,
    private_key: privateKey.export({ format: 'pem', type: 'pkcs8' }),
    client_email: email,
    client_id: clientId,
    token_uri: `${issuer}/token`,
  };
}

function serviceAccountOf(body, HttpError) {
  const account = serviceAccounts.get(body.client_email);
  if (account === undefined) throw new HttpError(404, 'no such service account');
  return account;
}

// The /__test/service/* hooks; `readJson`, `sendJson` and HttpError come from server.mjs.
export async function handleServiceRoute(route, req, res, io) {
  const { readJson, sendJson, HttpError, issuer } = io;
  switch (route) {
    case 'POST /__test/service/accounts':
      return sendJson(res, 200, createServiceAccount(await readJson(req), issuer));
    case 'POST /__test/service/delegation': {
      const body = await readJson(req);
      const account = serviceAccountOf(body, HttpError);
      if (body.allowed) account.withdrawn.delete(body.sub);
      else account.withdrawn.add(body.sub);
      return sendJson(res, 200, { sub: body.sub, allowed: Boolean(body.allowed) });
    }
    case 'POST /__test/service/revoke-key': {
      serviceAccountOf(await readJson(req), HttpError).revoked = true;
      return sendJson(res, 200, { revoked: true });
    }
    case 'GET /__test/service/stats':
      return sendJson(res, 200, stats);
    default:
      throw new HttpError(404, `no test route ${route}`);
  }
}
