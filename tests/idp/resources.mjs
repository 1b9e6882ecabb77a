// Microsoft's per-resource access tokens, for grants minted with `resource_scopes`.
//
// A Microsoft refresh token is multi-resource: a refresh whose `scope` names one resource's
// scopes (`https://outlook.office.com/IMAP.AccessAsUser.All`, `https://graph.microsoft.com/
// Mail.Read`, a bare `Mail.Read` meaning Graph, or `<resource>/.default`) answers with an
// access token for that resource alone. Here:
//   - scopes of two resources in one request -> 400 invalid_scope, AADSTS70011 (the refresh
//     token is not consumed);
//   - a scope the grant's user never consented to (or `.default` of a resource without any)
//     -> 400 invalid_grant, AADSTS65001, suberror consent_required (not consumed);
//   - otherwise the real refresh runs (rotation as for any refresh) and the answer's `scope`
//     lists the resource's scopes (Graph's without their prefix, as Microsoft does); the
//     access token's audience is recorded for POST /__test/audience.
// OpenID scopes (openid, profile, email, offline_access) go with any resource. A refresh
// without `scope`, or of a grant minted without `resource_scopes`, is oidc-provider's own.

const OIDC_SCOPES = new Set(['openid', 'profile', 'email', 'offline_access']);
const GRAPH = 'https://graph.microsoft.com';
const consents = new Map(); // grant id -> Map(lower-case resource -> {name, perms: Map})
const audiences = new Map(); // access token -> {audience, scope}

function splitScope(scope) {
  if (!scope.includes('://')) return [GRAPH, scope];
  const cut = scope.lastIndexOf('/');
  return [scope.slice(0, cut), scope.slice(cut + 1)];
}

// Record what the user of a grant consented to: space-separated resource scopes.
export function recordConsent(grantId, resourceScopes) {
  const byResource = new Map();
  for (const scope of resourceScopes.split(' ').filter(Boolean)) {
    const [resource, perm] = splitScope(scope);
    const key = resource.toLowerCase();
    if (!byResource.has(key)) byResource.set(key, { name: resource, perms: new Map() });
    byResource.get(key).perms.set(perm.toLowerCase(), perm);
  }
  consents.set(grantId, byResource);
}

// The audience and scope an access token was issued for ({audience: null} when unknown).
export function audienceOf(accessToken) {
  return audiences.get(accessToken) ?? { audience: null, scope: null };
}

function refuse(ctx, error, code, description, extra = {}) {
  ctx.status = 400;
  ctx.set('Cache-Control', 'no-store');
  ctx.body = {
    error, error_description: `AADSTS${code}: ${description}`, error_codes: [code], ...extra,
  };
}

// Handle a refresh_token request (the body already read into ctx.req.body).
export async function resourceRefresh(ctx, provider, next) {
  const form = new URLSearchParams(ctx.req.body.toString('utf8'));
  const scope = form.get('scope');
  if (!scope) return next();
  const presented = form.get('refresh_token') ?? '';
  const token = presented
    ? await provider.RefreshToken.find(presented, { ignoreExpiration: true })
    : undefined;
  const consent = token ? consents.get(token.grantId) : undefined;
  if (!consent) return next();
  const asked = scope.split(' ').filter((s) => s && !OIDC_SCOPES.has(s.toLowerCase()));
  const resources = new Set(asked.map((s) => splitScope(s)[0].toLowerCase()));
  if (resources.size > 1) {
    return refuse(ctx, 'invalid_scope', 70011, `The provided value for the input parameter 'scope' is not valid. One or more scopes in '${scope}' are not compatible with each other.`);
  }
  if (resources.size === 0) return next();
  const [key] = resources;
  const granted = consent.get(key);
  let perms = asked.map((s) => splitScope(s)[1]);
  if (perms.some((p) => p.toLowerCase() === '.default')) {
    perms = granted ? [...granted.perms.values()] : [];
  }
  if (!granted || perms.length === 0 || perms.some((p) => !granted.perms.has(p.toLowerCase()))) {
    return refuse(ctx, 'invalid_grant', 65001, "The user or administrator has not consented to use the application with ID 'tokenbroker-test'. Send an interactive authorization request for this user and resource.", { suberror: 'consent_required' });
  }
  form.delete('scope');
  ctx.req.body = Buffer.from(form.toString());
  await next();
  const { body } = ctx;
  if (ctx.status === 200 && body && typeof body === 'object' && body.access_token) {
    const named = perms.map((p) => granted.perms.get(p.toLowerCase()));
    const listed = named.map((p) => (key === GRAPH ? p : `${granted.name}/${p}`)).join(' ');
    audiences.set(body.access_token, { audience: granted.name, scope: listed });
    ctx.body = { ...body, scope: listed };
  }
  return undefined;
}
