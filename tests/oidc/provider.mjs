// A real OpenID provider for the tests: node-oidc-provider (OpenID Certified), with its own login pages.
//
// Started by tests/oidc/provider.py with one JSON argument:
//   { port, issuer, clients: [{client_id, client_secret, redirect_uris}], jwks: {keys: [private JWK]},
//     accounts: {login: {name, email, groups}} }
// Any login is accepted at its login page (its development interactions); a login listed in `accounts` gets
// those claims, any other gets a name made from the login. A login starting with "late" gets ID tokens that
// live one second (the tests of expired tokens). Consent is given by itself (a first-party client), so a
// sign-in is: the login page, then straight back to the client.
import Provider from "oidc-provider";

const options = JSON.parse(process.argv[2]);
const accounts = options.accounts || {};

const configuration = {
  clients: options.clients.map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    redirect_uris: c.redirect_uris,
    grant_types: ["authorization_code"],
    response_types: ["code"],
    token_endpoint_auth_method: "client_secret_basic",
  })),
  jwks: options.jwks,
  claims: {
    openid: ["sub"],
    profile: ["name", "preferred_username"],
    email: ["email", "email_verified"],
    groups: ["groups"],
  },
  scopes: ["openid", "profile", "email", "groups"],
  conformIdTokenClaims: false, // the ID token carries name, email and groups (the client reads no userinfo)
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ["flagstream-tests-only-cookie-key"] },
  ttl: {
    IdToken: (ctx) => ((ctx.oidc?.account?.accountId || "").startsWith("late") ? 1 : 600),
    AccessToken: 600,
    AuthorizationCode: 60,
    Interaction: 600,
    Session: 600,
    Grant: 600,
  },
  async findAccount(ctx, id) {
    const known = accounts[id] || {};
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          name: known.name || `Test ${id}`,
          preferred_username: id,
          email: known.email || `${id}@example.com`,
          email_verified: true,
          groups: known.groups || [],
        };
      },
    };
  },
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope("openid profile email groups");
    await grant.save();
    return grant;
  },
};

const provider = new Provider(options.issuer, configuration);
provider.proxy = true;
provider.on("server_error", (ctx, err) => console.error("server_error", err));
const server = provider.listen(options.port, "127.0.0.1", () => {
  console.log(`ready ${options.issuer}`);
});
const stop = () => server.close(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
