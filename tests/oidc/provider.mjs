// A real OpenID Connect provider for the end-to-end login test: the certified `oidc-provider`
// package (pinned in package.json / package-lock.json; `npm ci --prefix tests/oidc` installs it),
// run by tests/src/oidc_provider.rs with the machine's Node.js. It listens on 127.0.0.1 on a
// port the kernel picks, its issuer http://127.0.0.1:<port>; one confidential client
// (client_secret_basic, the authorization code flow, the shop's redirect URI); ID tokens signed
// RS256 with the keys of `--keys <file>` (a JWKS of private keys) or one key it makes itself;
// the package's own dev interactions for the login form (any login and password) and the consent.
// When it listens it prints one line: `ready <issuer>`.

import { generateKeyPairSync, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { parseArgs } from "node:util";

import Provider from "oidc-provider";

const { values: args } = parseArgs({
  options: {
    "client-id": { type: "string" },
    "client-secret": { type: "string" },
    "redirect-uri": { type: "string" },
    keys: { type: "string" },
    "id-token-ttl": { type: "string", default: "3600" },
  },
});
for (const name of ["client-id", "client-secret", "redirect-uri"]) {
  if (!args[name]) {
    console.error(`provider.mjs: --${name} is required`);
    process.exit(64);
  }
}

/** The signing keys: the harness's, else one RS256 key of our own. */
function signingKeys() {
  if (args.keys) return JSON.parse(readFileSync(args.keys, "utf8")).keys;
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return [{ ...privateKey.export({ format: "jwk" }), kid: "provider-rs256", alg: "RS256", use: "sig" }];
}

let handle = (req, res) => {
  res.statusCode = 503;
  res.end();
};
const server = createServer((req, res) => handle(req, res));
server.listen(0, "127.0.0.1", () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: args["client-id"],
        client_secret: args["client-secret"],
        redirect_uris: [args["redirect-uri"]],
        response_types: ["code"],
        grant_types: ["authorization_code"],
        token_endpoint_auth_method: "client_secret_basic",
        id_token_signed_response_alg: "RS256",
      },
    ],
    jwks: { keys: signingKeys() },
    cookies: { keys: [randomBytes(32).toString("hex")] },
    findAccount: async (ctx, id) => ({ accountId: id, claims: async () => ({ sub: id }) }),
    ttl: { IdToken: Number(args["id-token-ttl"]) },
    features: { devInteractions: { enabled: true } },
  });
  handle = provider.callback();
  console.log(`ready ${issuer}`);
});

for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => server.close(() => process.exit(0)));
