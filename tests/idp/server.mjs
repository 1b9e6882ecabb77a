// Test-only OAuth 2.0 / OpenID Connect provider for tokenbroker integration tests.
//
// Built on the `oidc-provider` package with an unbounded in-memory store (oidc-provider's
// development store forgets entries beyond 1000): every start is a fresh, empty provider. NEVER expose this outside 127.0.0.1 — it has test hooks
// that mint and revoke tokens without authentication.
//
// Environment:
//   IDP_PORT                 port to listen on (unset or 0: the OS picks one)
//   IDP_REDIRECT_URIS        comma-separated redirect URIs registered for both clients
//                            (default http://127.0.0.1:8080/oauth/callback)
//   IDP_ACCESS_TOKEN_TTL_S   access token lifetime in seconds (default 3600)
//   IDP_VERBOSE=1            also print oidc-provider's notices and expected warnings
//
// Stdout carries exactly one line, `ISSUER=http://127.0.0.1:<port>`, once listening.
// Everything else goes to stderr.
//
// Driving the devInteractions login + consent over plain HTTP (keep cookies between
// requests; do not follow redirects automatically if you want to see each step):
//   1. GET  /auth?client_id=tokenbroker-test&response_type=code&redirect_uri=<uri>
//           &scope=openid%20email%20mail.read&state=<s>&code_challenge=<S256>
//           &code_challenge_method=S256
//      -> 303 Location: /interaction/<uid1>   (sets _interaction, _interaction_resume cookies)
//   2. POST /interaction/<uid1>  form: prompt=login&login=<sub>&password=<anything>
//      -> 303 Location: /auth/<uid1>
//   3. GET  /auth/<uid1>  -> 303 Location: /interaction/<uid2>  (sets _session cookie)
//   4. POST /interaction/<uid2>  form: prompt=consent
//      -> 303 Location: /auth/<uid2>
//   5. GET  /auth/<uid2>  -> 303 Location: <redirect_uri>?code=...&state=<s>&iss=<issuer>
//   (GET /interaction/<uid> renders the HTML form; it is optional. Consent is skipped
//   when the session already has a grant covering the requested scopes. GET
//   /interaction/<uid>/abort ends the flow with error=access_denied.)
//   `offline_access` in the authorization request is dropped unless prompt=consent is
//   also sent, but refresh tokens are issued to our clients regardless of it.
//
// Token introspection (RFC 7662) at /token/introspection answers the resource-server client
// tokenbroker-mailserver/tokenbroker-mailserver-secret (HTTP Basic; the tests' Dovecot):
// a revoked (RFC 7009 /token/revocation), expired or unknown access token is inactive.
//
// Test hooks (JSON in, JSON out), handled before the provider sees the request:
//   POST /__test/mint    {sub, scope?, client_id?}
//                        -> {refresh_token, access_token, token_type, expires_in, scope, grant_id}
//   POST /__test/faults  {faults: [fault, ...]}  -> {queued}
//   GET  /__test/stats   -> {token_requests, refresh_requests, code_requests, revocations,
//                            faults_pending}
//   GET  /__test/traceparents -> {traceparents}: the W3C `traceparent` header of each
//                        refresh_token request ('' when absent), oldest first, the last 100
//   POST /__test/reset   -> {} (clears the fault queue, the counters, the delay window and
//                        the rotation mode; tokens and grants are kept)
//   POST /__test/revoke  {refresh_token} -> {revoked, grant_id}; revokes the whole grant
//                        (all its refresh/access tokens and codes), like a user removing
//                        the app's access. 404 if the token is unknown.
//   POST /__test/delay   {min_ms, max_ms, for_ms} -> {until_ms}; for the next for_ms
//                        every refresh_token request waits a uniformly random time in
//                        [min_ms, max_ms] before the real exchange (before any fault).
//                        The exchange runs even when the client hung up meanwhile: the
//                        token rotates and nobody learns the new one, as with a real
//                        provider answering after the client's timeout. {} or for_ms 0
//                        clears the window.
//   POST /__test/active  {refresh_token} -> {active, grant_id, active_in_grant}, or
//                        {refresh_tokens: [...]} -> {tokens: [{...}, ...]}: whether the
//                        token would be accepted now (known, unused, unexpired, its grant
//                        alive) and how many refresh tokens of its grant would be.
//   POST /__test/refresh-lifetime {seconds, client_id?} -> {client_id, seconds}: from now on
//                        every successful authorization_code and refresh_token answer to
//                        that client (default: every client) carries refresh_token_expires_in
//                        = seconds, rotated or not (null stops it; cleared by reset), like
//                        Google's answers for apps in testing.
//   POST /__test/rotation {retire_rotated} -> {retire_rotated}; false keeps a rotated
//                        refresh token usable (like Microsoft), true (the default, restored
//                        by reset) consumes it, so that presenting it again is a replay.
// Stats also count refresh_ok (200 answers to refresh_token requests), refresh_unheard
// (those whose client had hung up before the answer: rotations nobody learned) and
// refresh_in_flight (refresh_token requests being handled now).
//   /__test/clients/...  client secrets that expire and private_key_jwt with certificates
//                        (Microsoft's client authentication): see client_auth.mjs.
// Application grants (client_credentials, JWT bearer) and their /__test/service/* hooks:
// see service_grants.mjs.
//   POST /__test/mint also takes `resource_scopes`: Microsoft resource scopes the user
//                        consented to; refreshes of that grant asking `scope` then get
//                        per-resource tokens (see resources.mjs).
//   POST /__test/audience {access_token} -> {audience, scope}: the resource a per-resource
//                        token was issued for ({audience: null} for any other token).
//   Stats also count refresh_replayed: refresh requests presenting an already used token.
//   POST /__test/claims  {sub, claims: {name: value|null}} -> {sub, claims}; changes the
//                        claims of that account from now on (null removes one; kept across
//                        /__test/reset). E.g. {email_verified: false}, or Microsoft's
//                        {tid, oid, preferred_username}, which go into the id_token.
//                        {mail_refusal: text} also goes into each access token issued from
//                        then on, so introspection answers it (the tests' Dovecot refuses
//                        mail logins with that reason).
//
// Claims: sub, email, email_verified (true) and name by default. The id_token carries the
// `openid` scope's claims (sub, tid, oid, preferred_username, when set); email and name are
// answered by userinfo only (oidc-provider's conformIdTokenClaims).
//
// Microsoft's `prompt=select_account` is accepted and ignored (one account per login here).
//
// Faults: a FIFO queue. Each token-endpoint POST takes the OLDEST queued fault whose
// `grant` (default "refresh_token") equals the request's grant_type, and that fault is
// used up by that one request, whatever the outcome. Kinds:
//   error              answer `status` (default 400) with JSON made of the fault's fields
//                      other than kind/grant/status/retry_after (so error, error_description,
//                      error_codes, ...; error defaults to invalid_grant). Provider untouched:
//                      the refresh token is not consumed.
//   status             answer HTTP `status` (default 503) with optional Retry-After
//                      (`retry_after`) and optional `body` string (`content_type`, default
//                      text/plain). Refresh token not consumed.
//   string_expires_in  real exchange, then expires_in becomes a string ("3600").
//   no_expires_in      real exchange, then expires_in is removed.
//   expires_in         real exchange, then expires_in is replaced by `value` (any JSON).
//   refresh_token_expires_in  real exchange, then refresh_token_expires_in is set to
//                      `value` (any JSON; it wins over /__test/refresh-lifetime).
//   no_refresh_token   real exchange WITHOUT rotation (the presented refresh token stays
//                      valid and is not consumed), and refresh_token is removed from the
//                      response — like providers that only return a new refresh token
//                      sometimes.
//   delay_ms           wait `ms` (default 1000), then the real exchange.
//   answer_delay_ms    the real exchange first (the token rotates), then wait `ms` (default
//                      1000) before answering: a slow answer whose refresh already happened.
//   hang               never answer; the socket is closed after `ms` (default 60000).
//   drop               destroy the socket without any answer.
// The rewriting kinds only touch successful (200) responses; an error from the real
// provider passes through unchanged (and the fault is still used up).
//
// Rotation: refresh tokens rotate on every use. Presenting an already-rotated (consumed)
// refresh token is treated as replay: oidc-provider answers invalid_grant ("refresh token
// already used") AND revokes the whole grant, so the current refresh token of that chain
// stops working too.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import * as http from 'node:http';
import * as querystring from 'node:querystring';

import Provider from 'oidc-provider';

import {
  ClientAuthError, clientAuthMiddleware, handleClientAuthRoute, resetClientAuth,
} from './client_auth.mjs';
import { audienceOf, recordConsent, resourceRefresh } from './resources.mjs';
import {
  handleServiceRoute, isServiceGrant, resetServiceStats, serviceGrant,
} from './service_grants.mjs';

// ---------------------------------------------------------------------------
// Logging: oidc-provider prints notices with console.info (stdout). Stdout is reserved
// for the ISSUER line, so send all console output to stderr and drop the expected noise.
const VERBOSE = process.env.IDP_VERBOSE === '1';
const EXPECTED_NOISE = [
  'oidc-provider NOTICE:',
  'a quick start development-only feature devInteractions is enabled',
  'already parsed request body detected',
];
function toStderr(...args) {
  const line = args.map((a) => (typeof a === 'string' ? a : String(a?.stack ?? a))).join(' ');
  if (!VERBOSE && EXPECTED_NOISE.some((noise) => line.includes(noise))) return;
  process.stderr.write(`${line}\n`);
}
console.log = toStderr;
console.info = toStderr;
console.warn = toStderr;
console.error = toStderr;

// ---------------------------------------------------------------------------
// Settings.
function positiveIntFromEnv(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) {
    throw new Error(`${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
  }
  return value;
}

const PORT = positiveIntFromEnv('IDP_PORT', 0);
const ACCESS_TOKEN_TTL_S = positiveIntFromEnv('IDP_ACCESS_TOKEN_TTL_S', 3600);
if (ACCESS_TOKEN_TTL_S < 1) throw new Error('IDP_ACCESS_TOKEN_TTL_S must be at least 1');
const REDIRECT_URIS = (process.env.IDP_REDIRECT_URIS || 'http://127.0.0.1:8080/oauth/callback')
  .split(',')
  .map((uri) => uri.trim())
  .filter(Boolean);

const ROUTES = { token: '/token', revocation: '/token/revocation' };
const SCOPES = [
  'openid', 'email', 'profile', 'offline_access',
  'mail.read', 'postmaster.readonly', 'calendar.read',
];
const CLIENTS = [
  ['tokenbroker-test', 'tokenbroker-test-secret'],
  ['tokenbroker-other', 'tokenbroker-other-secret'],
].map(([clientId, secret]) => ({
  client_id: clientId,
  client_secret: secret,
  token_endpoint_auth_method: 'client_secret_post',
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  redirect_uris: REDIRECT_URIS,
}));
const DEFAULT_CLIENT_ID = CLIENTS[0].client_id;
// A resource server (the tests' Dovecot): no grants, it only asks the RFC 7662 introspection
// endpoint about access tokens presented to it, authenticating with HTTP Basic.
CLIENTS.push({
  client_id: 'tokenbroker-mailserver',
  client_secret: 'tokenbroker-mailserver-secret',
  token_endpoint_auth_method: 'client_secret_basic',
  grant_types: [],
  response_types: [],
  redirect_uris: [],
});

// ---------------------------------------------------------------------------
// Test state.
const faultQueue = [];
const stats = {};
function resetStats() {
  Object.assign(stats, {
    token_requests: 0,
    refresh_requests: 0,
    code_requests: 0,
    revocations: 0,
    refresh_ok: 0,
    refresh_unheard: 0,
    refresh_replayed: 0,
  });
}
resetStats();
const traceparents = []; // of refresh_token requests, the last TRACEPARENTS_KEPT
const TRACEPARENTS_KEPT = 100;
let refreshInFlight = 0;
let delayWindow = null; // {minMs, maxMs, until (epoch ms)} while refresh answers are slowed

function windowDelayMs() {
  if (delayWindow === null) return 0;
  if (Date.now() >= delayWindow.until) {
    delayWindow = null;
    return 0;
  }
  const { minMs, maxMs } = delayWindow;
  return minMs + Math.floor(Math.random() * (maxMs - minMs + 1));
}

function setDelay(body) {
  const fields = { min_ms: 0, max_ms: 0, for_ms: 0, ...body };
  for (const [name, value] of Object.entries(fields)) {
    if (!['min_ms', 'max_ms', 'for_ms'].includes(name)) {
      throw new HttpError(400, `unknown delay field ${JSON.stringify(name)}`);
    }
    if (!Number.isInteger(value) || value < 0) {
      throw new HttpError(400, `delay field ${name} must be a non-negative integer`);
    }
  }
  if (fields.min_ms > fields.max_ms) throw new HttpError(400, 'min_ms must not exceed max_ms');
  if (fields.for_ms === 0) {
    delayWindow = null;
    return { until_ms: 0 };
  }
  const until = Date.now() + fields.for_ms;
  delayWindow = { minMs: fields.min_ms, maxMs: fields.max_ms, until };
  return { until_ms: until };
}
const pendingTimers = new Set();

function sleep(ms) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => { pendingTimers.delete(timer); resolve(); }, ms);
    pendingTimers.add(timer);
  });
}

function takeFault(grantType) {
  const index = faultQueue.findIndex((f) => (f.grant ?? 'refresh_token') === grantType);
  if (index === -1) return undefined;
  return faultQueue.splice(index, 1)[0];
}

const FAULT_KINDS = new Set([
  'error', 'status', 'string_expires_in', 'no_expires_in', 'no_refresh_token',
  'expires_in', 'refresh_token_expires_in', 'delay_ms', 'answer_delay_ms', 'hang', 'drop',
]);

function validateFault(fault) {
  if (fault === null || typeof fault !== 'object' || Array.isArray(fault)) {
    throw new HttpError(400, 'each fault must be a JSON object');
  }
  if (!FAULT_KINDS.has(fault.kind)) {
    throw new HttpError(400, `unknown fault kind ${JSON.stringify(fault.kind)}`);
  }
  if ((fault.kind === 'expires_in' || fault.kind === 'refresh_token_expires_in')
      && !('value' in fault)) {
    throw new HttpError(400, `${fault.kind} fault needs a "value"`);
  }
  for (const field of ['status', 'ms']) {
    if (field in fault && (!Number.isInteger(fault[field]) || fault[field] < 0)) {
      throw new HttpError(400, `fault field ${field} must be a non-negative integer`);
    }
  }
  if (fault.grant !== undefined && typeof fault.grant !== 'string') {
    throw new HttpError(400, 'fault field grant must be a string');
  }
}

// ---------------------------------------------------------------------------
// Storage: every model in one Map, without a size bound; entries lapse at their expiry.
const store = new Map(); // `${model}:${id}` -> {payload, expiresAt (ms, Infinity = never)}
const grantKeys = new Map(); // grant id -> Set of store keys of the grant's tokens and codes
const GRANT_BOUND = new Set([
  'AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode',
  'BackchannelAuthenticationRequest',
]);
const rotation = { retireRotated: true };
const refreshLifetimes = new Map(); // client_id ('*' = any) -> refresh_token_expires_in (s)

// Add refresh_token_expires_in to a successful answer, when /__test/refresh-lifetime asked
// for it for the answer's client (a refresh_token_expires_in fault's value wins).
function addRefreshLifetime(ctx) {
  const clientId = ctx.oidc?.client?.clientId;
  const seconds = refreshLifetimes.get(clientId) ?? refreshLifetimes.get('*');
  if (seconds === undefined) return;
  rewriteSuccess(ctx, (body) => {
    if (!('refresh_token_expires_in' in body)) body.refresh_token_expires_in = seconds;
  });
}

function setRefreshLifetime(body) {
  const clientId = body.client_id ?? '*';
  if (typeof clientId !== 'string') throw new HttpError(400, 'client_id must be a string');
  if (body.seconds === null) {
    refreshLifetimes.delete(clientId);
  } else if (Number.isInteger(body.seconds) && body.seconds > 0) {
    refreshLifetimes.set(clientId, body.seconds);
  } else {
    throw new HttpError(400, 'seconds must be a positive integer or null');
  }
  return { client_id: clientId, seconds: refreshLifetimes.get(clientId) ?? null };
}

function live(key) {
  const entry = store.get(key);
  if (entry === undefined) return undefined;
  if (entry.expiresAt <= Date.now()) {
    store.delete(key);
    return undefined;
  }
  return entry.payload;
}

class UnboundedAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const expiresAt = expiresIn ? Date.now() + expiresIn * 1000 : Infinity;
    store.set(this.key(id), { payload, expiresAt });
    if (this.model === 'Session' && payload.uid) {
      store.set(`SessionUid:${payload.uid}`, { payload: id, expiresAt });
    }
    if (payload.userCode) store.set(`UserCode:${payload.userCode}`, { payload: id, expiresAt });
    if (GRANT_BOUND.has(this.model) && payload.grantId) {
      if (!grantKeys.has(payload.grantId)) grantKeys.set(payload.grantId, new Set());
      grantKeys.get(payload.grantId).add(this.key(id));
    }
  }

  async find(id) {
    return live(this.key(id));
  }

  async findByUid(uid) {
    const id = live(`SessionUid:${uid}`);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = live(`UserCode:${userCode}`);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    if (this.model === 'RefreshToken' && !rotation.retireRotated) return;
    const payload = live(this.key(id));
    if (payload !== undefined) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) { // eslint-disable-line class-methods-use-this
    for (const key of grantKeys.get(grantId) ?? []) store.delete(key);
    grantKeys.delete(grantId);
  }
}

// How many refresh tokens of a grant would be accepted now (0 once the grant is gone).
function activeRefreshTokens(grantId) {
  if (live(`Grant:${grantId}`) === undefined) return 0;
  let count = 0;
  for (const key of grantKeys.get(grantId) ?? []) {
    if (key.startsWith('RefreshToken:')) {
      const payload = live(key);
      if (payload !== undefined && !payload.consumed) count += 1;
    }
  }
  return count;
}

// ---------------------------------------------------------------------------
// Accounts: any sub exists; POST /__test/claims changes what an account's claims say.
const claimOverrides = new Map();

function accountFor(sub) {
  const email = sub.includes('@') ? sub : `${sub}@example.test`;
  return {
    accountId: sub,
    async claims() {
      const claims = {
        sub, email, email_verified: true, name: `Test User ${sub}`,
        ...(claimOverrides.get(sub) ?? {}),
      };
      return Object.fromEntries(Object.entries(claims).filter(([, value]) => value !== null));
    },
  };
}

function setClaims(body) {
  const { sub, claims } = body;
  if (typeof sub !== 'string' || sub === '') throw new HttpError(400, 'sub must be a non-empty string');
  if (claims === null || typeof claims !== 'object' || Array.isArray(claims)) {
    throw new HttpError(400, 'claims must be a JSON object');
  }
  if ('sub' in claims) throw new HttpError(400, 'the sub of an account cannot change');
  claimOverrides.set(sub, { ...(claimOverrides.get(sub) ?? {}), ...claims });
  return { sub, claims: claimOverrides.get(sub) };
}

// Koa middleware: drop Microsoft's prompt=select_account, which oidc-provider does not know.
async function selectAccountMiddleware(ctx, next) {
  if (ctx.method === 'GET' && ctx.path === '/auth' && ctx.query.prompt === 'select_account') {
    const query = { ...ctx.query };
    delete query.prompt;
    ctx.querystring = querystring.stringify(query);
  }
  return next();
}

// ---------------------------------------------------------------------------
// Koa middleware in front of the token and revocation endpoints: counters + faults.
async function readRawBody(req, limit = 64 * 1024) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > limit) throw new Error('request body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function rewriteSuccess(ctx, mutate) {
  if (ctx.status === 200 && ctx.body && typeof ctx.body === 'object' && !Buffer.isBuffer(ctx.body)) {
    const body = { ...ctx.body };
    mutate(body);
    ctx.body = body;
  }
}

async function tokenEndpointMiddleware(ctx, next) {
  if (ctx.method !== 'POST') return next();

  if (ctx.path === ROUTES.revocation) {
    stats.revocations += 1;
    return next();
  }
  if (ctx.path !== ROUTES.token) return next();

  // Read the body here to learn grant_type; oidc-provider then uses the already-read body
  // (it falls back to req.body when the request stream has been consumed).
  const raw = await readRawBody(ctx.req);
  ctx.req.body = raw;
  const grantType = ctx.is('application/x-www-form-urlencoded')
    ? String(querystring.parse(raw.toString('utf8')).grant_type ?? '')
    : '';

  stats.token_requests += 1;
  if (grantType === 'authorization_code') stats.code_requests += 1;
  if (isServiceGrant(grantType)) {
    const secrets = new Map(CLIENTS.map((c) => [c.client_id, c.client_secret]));
    // The client's secrets and certificates (client_auth.mjs) are checked first; a
    // client it accepts reaches the grant with its built-in secret.
    const handle = async () =>
      serviceGrant(ctx, ctx.req.body, secrets, providerIssuer, ACCESS_TOKEN_TTL_S);
    const authenticate = clientAuthMiddleware(providerIssuer, [ROUTES.token], readRawBody);
    return authenticate(ctx, () => applyFault(ctx, handle, grantType));
  }
  if (grantType !== 'refresh_token') {
    await applyFault(ctx, next, grantType);
    if (grantType === 'authorization_code') addRefreshLifetime(ctx);
    return undefined;
  }

  stats.refresh_requests += 1;
  traceparents.push(ctx.get('traceparent'));
  if (traceparents.length > TRACEPARENTS_KEPT) traceparents.shift();
  refreshInFlight += 1;
  // Koa never stops a handler whose client hung up: note it, and answer into the void.
  let hungUp = false;
  ctx.res.once('close', () => { hungUp = !ctx.res.writableFinished; });
  try {
    const delay = windowDelayMs();
    if (delay > 0) await sleep(delay);
    if (await presentsUsedToken(ctx)) stats.refresh_replayed += 1;
    await applyFault(ctx, () => resourceRefresh(ctx, provider, next), grantType);
    addRefreshLifetime(ctx);
  } finally {
    refreshInFlight -= 1;
  }
  if (ctx.status === 200) {
    stats.refresh_ok += 1;
    if (hungUp || ctx.req.socket.destroyed) stats.refresh_unheard += 1;
  }
  return undefined;
}

// True when the request presents a refresh token that an earlier refresh already used.
async function presentsUsedToken(ctx) {
  const form = new URLSearchParams(ctx.req.body.toString('utf8'));
  const value = form.get('refresh_token');
  if (!value) return false;
  const token = await provider.RefreshToken.find(value, { ignoreExpiration: true });
  return Boolean(token?.consumed);
}

async function applyFault(ctx, next, grantType) {
  const fault = grantType ? takeFault(grantType) : undefined;
  if (!fault) return next();

  switch (fault.kind) {
    case 'error': {
      const {
        kind, grant, status, retry_after: retryAfter, ...fields
      } = fault;
      ctx.body = { error: 'invalid_grant', ...fields };
      ctx.status = status ?? 400;
      ctx.set('Cache-Control', 'no-store');
      if (retryAfter !== undefined) ctx.set('Retry-After', String(retryAfter));
      return undefined;
    }
    case 'status': {
      ctx.body = fault.body === undefined ? '' : String(fault.body);
      ctx.status = fault.status ?? 503;
      ctx.type = fault.content_type ?? 'text/plain';
      if (fault.retry_after !== undefined) ctx.set('Retry-After', String(fault.retry_after));
      return undefined;
    }
    case 'drop':
      ctx.respond = false;
      ctx.req.socket.destroy();
      return undefined;
    case 'hang': {
      ctx.respond = false;
      const { socket } = ctx.req;
      await sleep(fault.ms ?? 60000);
      socket.destroy();
      return undefined;
    }
    case 'delay_ms':
      await sleep(fault.ms ?? 1000);
      return next();
    case 'answer_delay_ms':
      await next();
      await sleep(fault.ms ?? 1000);
      return undefined;
    case 'no_refresh_token':
      ctx.state.idpKeepRefreshToken = true;
      await next();
      rewriteSuccess(ctx, (body) => { delete body.refresh_token; });
      return undefined;
    case 'string_expires_in':
      await next();
      rewriteSuccess(ctx, (body) => {
        if (body.expires_in !== undefined) body.expires_in = String(body.expires_in);
      });
      return undefined;
    case 'no_expires_in':
      await next();
      rewriteSuccess(ctx, (body) => { delete body.expires_in; });
      return undefined;
    case 'expires_in':
      await next();
      rewriteSuccess(ctx, (body) => { body.expires_in = fault.value; });
      return undefined;
    case 'refresh_token_expires_in':
      await next();
      rewriteSuccess(ctx, (body) => { body.refresh_token_expires_in = fault.value; });
      return undefined;
    default:
      return next();
  }
}

// ---------------------------------------------------------------------------
// Test hook routes (plain node http, JSON in/out).
class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function readJson(req) {
  const raw = await readRawBody(req);
  if (raw.length === 0) return {};
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    throw new HttpError(400, 'body must be JSON');
  }
}

function sendJson(res, status, body) {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(payload),
    'cache-control': 'no-store',
  });
  res.end(payload);
}

async function mint(provider, body) {
  const { sub } = body;
  const scope = body.scope ?? 'openid email offline_access';
  const clientId = body.client_id ?? DEFAULT_CLIENT_ID;
  if (typeof sub !== 'string' || sub === '') throw new HttpError(400, 'sub must be a non-empty string');
  if (typeof scope !== 'string') throw new HttpError(400, 'scope must be a string');
  const scopes = [...new Set(scope.split(' ').filter(Boolean))];
  const unknown = scopes.filter((s) => !SCOPES.includes(s));
  if (unknown.length) throw new HttpError(400, `unsupported scope(s): ${unknown.join(' ')}`);
  const client = await provider.Client.find(clientId);
  if (!client) throw new HttpError(400, `unknown client_id ${JSON.stringify(clientId)}`);

  const grant = new provider.Grant({ accountId: sub, clientId });
  grant.addOIDCScope(scopes.join(' '));
  const grantId = await grant.save();

  const common = {
    accountId: sub,
    client,
    grantId,
    gty: 'authorization_code',
    scope: scopes.join(' '),
  };
  if (body.resource_scopes !== undefined) {
    if (typeof body.resource_scopes !== 'string') {
      throw new HttpError(400, 'resource_scopes must be a string');
    }
    recordConsent(grantId, body.resource_scopes);
  }
  const refreshToken = new provider.RefreshToken({
    ...common,
    authTime: Math.floor(Date.now() / 1000),
    expiresWithSession: false,
  });
  const accessToken = new provider.AccessToken(common);
  return {
    refresh_token: await refreshToken.save(),
    access_token: await accessToken.save(),
    token_type: 'Bearer',
    expires_in: accessToken.expiration,
    scope: accessToken.scope,
    grant_id: grantId,
  };
}

async function revokeGrantOf(provider, body) {
  const value = body.refresh_token;
  if (typeof value !== 'string' || value === '') {
    throw new HttpError(400, 'refresh_token must be a non-empty string');
  }
  const token = await provider.RefreshToken.find(value, { ignoreExpiration: true });
  if (!token) throw new HttpError(404, 'refresh token not found');
  const { grantId } = token;
  await Promise.all([
    token.destroy(),
    provider.RefreshToken.revokeByGrantId(grantId),
    provider.AccessToken.revokeByGrantId(grantId),
    provider.AuthorizationCode.revokeByGrantId(grantId),
    provider.Grant.adapter.destroy(grantId),
  ]);
  return { revoked: true, grant_id: grantId };
}

async function tokenState(provider, value) {
  if (typeof value !== 'string' || value === '') {
    throw new HttpError(400, 'refresh_token must be a non-empty string');
  }
  const token = await provider.RefreshToken.find(value, { ignoreExpiration: true });
  if (!token) return { active: false, grant_id: null, active_in_grant: 0 };
  const { grantId } = token;
  const grantAlive = live(`Grant:${grantId}`) !== undefined;
  return {
    active: Boolean(token.isValid && grantAlive),
    grant_id: grantId,
    active_in_grant: activeRefreshTokens(grantId),
  };
}

async function activeState(provider, body) {
  if (body.refresh_tokens === undefined) return tokenState(provider, body.refresh_token);
  if (!Array.isArray(body.refresh_tokens)) throw new HttpError(400, 'refresh_tokens must be a list');
  const tokens = [];
  for (const value of body.refresh_tokens) tokens.push(await tokenState(provider, value));
  return { tokens };
}

async function handleTestRoute(provider, req, res) {
  const path = new URL(req.url, 'http://127.0.0.1').pathname;
  const route = `${req.method} ${path}`;
  switch (route) {
    case 'POST /__test/mint':
      return sendJson(res, 200, await mint(provider, await readJson(req)));
    case 'POST /__test/faults': {
      const body = await readJson(req);
      if (!Array.isArray(body.faults)) throw new HttpError(400, 'faults must be a list');
      body.faults.forEach(validateFault);
      faultQueue.push(...body.faults.map((f) => ({ ...f })));
      return sendJson(res, 200, { queued: faultQueue.length });
    }
    case 'GET /__test/stats':
      return sendJson(res, 200, {
        ...stats, refresh_in_flight: refreshInFlight, faults_pending: faultQueue.length,
      });
    case 'GET /__test/traceparents':
      return sendJson(res, 200, { traceparents });
    case 'POST /__test/reset':
      faultQueue.length = 0;
      traceparents.length = 0;
      resetStats();
      delayWindow = null;
      rotation.retireRotated = true;
      refreshLifetimes.clear();
      resetClientAuth();
      resetServiceStats();
      return sendJson(res, 200, {});
    case 'POST /__test/delay':
      return sendJson(res, 200, setDelay(await readJson(req)));
    case 'POST /__test/active':
      return sendJson(res, 200, await activeState(provider, await readJson(req)));
    case 'POST /__test/rotation': {
      const body = await readJson(req);
      if (typeof body.retire_rotated !== 'boolean') {
        throw new HttpError(400, 'retire_rotated must be a boolean');
      }
      rotation.retireRotated = body.retire_rotated;
      return sendJson(res, 200, { retire_rotated: rotation.retireRotated });
    }
    case 'POST /__test/refresh-lifetime':
      return sendJson(res, 200, setRefreshLifetime(await readJson(req)));
    case 'POST /__test/revoke':
      return sendJson(res, 200, await revokeGrantOf(provider, await readJson(req)));
    case 'POST /__test/audience': {
      const body = await readJson(req);
      if (typeof body.access_token !== 'string') throw new HttpError(400, 'access_token must be a string');
      return sendJson(res, 200, audienceOf(body.access_token));
    }
    case 'POST /__test/claims':
      return sendJson(res, 200, setClaims(await readJson(req)));
    default:
      if (path.startsWith('/__test/clients/')) {
        return sendJson(res, 200, await handleClientAuthRoute(CLIENTS, route, readJson, req));
      }
      if (path.startsWith('/__test/service/')) {
        const io = { readJson, sendJson, HttpError, issuer: providerIssuer };
        return handleServiceRoute(route, req, res, io);
      }
      throw new HttpError(404, `no test route ${route}`);
  }
}

// ---------------------------------------------------------------------------
// Wiring.
let providerCallback;
let provider;
let providerIssuer;

const server = http.createServer((req, res) => {
  if (req.url.startsWith('/__test/')) {
    handleTestRoute(provider, req, res).catch((err) => {
      const status = err instanceof HttpError || err instanceof ClientAuthError ? err.status : 500;
      if (status === 500) console.error('test hook failed:', err);
      if (!res.headersSent) sendJson(res, status, { error: err.message });
      else res.destroy();
    });
    return;
  }
  providerCallback(req, res);
});

server.listen(PORT, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  providerIssuer = issuer;

  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'tokenbroker-test-rs256', alg: 'RS256', use: 'sig' };

  provider = new Provider(issuer, {
    clients: CLIENTS,
    jwks: { keys: [signingKey] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    scopes: SCOPES,
    responseTypes: ['code'],
    claims: {
      openid: ['sub', 'tid', 'oid', 'preferred_username'],
      email: ['email', 'email_verified'],
      profile: ['name'],
    },
    adapter: UnboundedAdapter,
    // An account's `mail_refusal` claim (set with /__test/claims) goes into each new access
    // token and so into introspection answers: the tests' Dovecot refuses mail logins with it.
    extraTokenClaims: async (ctx, token) => {
      const refusal = claimOverrides.get(token.accountId)?.mail_refusal;
      return refusal ? { mail_refusal: refusal } : undefined;
    },
    findAccount: async (ctx, sub) => accountFor(sub),
    features: {
      devInteractions: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true },
    },
    pkce: { methods: ['S256'], required: () => true },
    routes: ROUTES,
    // Refresh tokens for every client allowed the refresh_token grant, offline_access or not.
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    // Rotate on every use, except while a `no_refresh_token` fault is being served.
    rotateRefreshToken: (ctx) => !ctx.state?.idpKeepRefreshToken,
    expiresWithSession: async () => false,
    ttl: {
      AccessToken: () => ACCESS_TOKEN_TTL_S,
      AuthorizationCode: () => 60,
      IdToken: () => 3600,
      RefreshToken: () => 14 * 24 * 3600,
      Grant: () => 14 * 24 * 3600,
      Interaction: () => 3600,
      Session: () => 14 * 24 * 3600,
      ClientCredentials: () => 600,
      DeviceCode: () => 600,
      BackchannelAuthenticationRequest: () => 600,
    },
  });
  provider.use(selectAccountMiddleware);
  provider.use(tokenEndpointMiddleware);
  provider.use(clientAuthMiddleware(issuer, [ROUTES.token, ROUTES.revocation], readRawBody));
  provider.on('server_error', (ctx, err) => console.error('server_error:', err));
  // The token endpoint answers every invalid_grant with the same generic description;
  // log the real reason (e.g. "refresh token already used") to stderr for debugging.
  provider.on('grant.error', (ctx, err) => {
    console.error(`token endpoint ${err.error}: ${err.error_detail ?? err.error_description}`);
  });
  providerCallback = provider.callback();

  process.stdout.write(`ISSUER=${issuer}\n`);
});

let stopping = false;
function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  console.error(`received ${signal}, shutting down`);
  for (const timer of pendingTimers) clearTimeout(timer);
  pendingTimers.clear();
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
