// The official TypeScript MCP SDK (v1 line) as an OAuth client, driven by test_typescript_sdk.py.
//
// Usage: node ts_client.mjs MCP_URL REDIRECT_URL   (env AICONNECTOR_NODE_MODULES: where
// scripts/install-node-tools put @modelcontextprotocol/sdk)
//
// Protocol with the test, one JSON object per line:
//   stdout {"event":"authorize","url":…}  the SDK wants the person to open this URL
//   stdin  {"code":…,"state":…}           what the browser got back on the redirect URI
//   stdout {"event":"result",…}           tools, whoami and the granted scope
// then commands, one at a time, so the test can act on the server in between:
//   stdin  {"cmd":"call","name":…,"arguments":{…}}
//   stdout {"event":"called",…}            the tool's result and fingerprints of the tokens, or
//   stdout {"event":"error",…}             the call threw (unauthorized: an UnauthorizedError)
//   stdin  {"cmd":"exit"} (or end of input) close the client and exit 0
// Anything else (diagnostics) goes to stderr. The state is checked here, as a client must.
import { createRequire } from "node:module";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { createHash, randomBytes } from "node:crypto";

const [mcpUrl, redirectUrl] = process.argv.slice(2);
const modules = process.env.AICONNECTOR_NODE_MODULES;
if (!mcpUrl || !redirectUrl || !modules) {
  console.error("usage: AICONNECTOR_NODE_MODULES=… node ts_client.mjs MCP_URL REDIRECT_URL");
  process.exit(2);
}
// The SDK lives in .tools/node_modules, not next to this file: resolve it from there.
const sdk = createRequire(join(modules, "..", "package.json"));
const load = (subpath) => import(sdk.resolve(`@modelcontextprotocol/sdk/${subpath}`));
const { Client } = await load("client/index.js");
const { StreamableHTTPClientTransport } = await load("client/streamableHttp.js");
const { UnauthorizedError } = await load("client/auth.js");

const emit = (event, data) => process.stdout.write(JSON.stringify({ event, ...data }) + "\n");
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

/** OAuthClientProvider kept in memory: one run is one fresh client identity. */
class MemoryProvider {
  constructor() {
    this.saved = {};
    this.expectedState = randomBytes(16).toString("hex");
  }
  get redirectUrl() {
    return redirectUrl;
  }
  get clientMetadata() {
    return {
      client_name: "Interop TypeScript SDK",
      redirect_uris: [redirectUrl],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  state() {
    return this.expectedState;
  }
  clientInformation() {
    return this.saved.client;
  }
  saveClientInformation(info) {
    this.saved.client = info;
  }
  tokens() {
    return this.saved.tokens;
  }
  saveTokens(tokens) {
    this.saved.tokens = tokens;
  }
  redirectToAuthorization(url) {
    emit("authorize", { url: url.toString() });
  }
  saveCodeVerifier(verifier) {
    this.saved.verifier = verifier;
  }
  codeVerifier() {
    return this.saved.verifier;
  }
  // Optional in the SDK, but without it a refused refresh (invalid_grant, e.g. after a revoke)
  // surfaces as InvalidGrantError instead of a fresh authorization.
  invalidateCredentials(scope) {
    this.invalidated = [...(this.invalidated ?? []), scope];
    if (scope === "all" || scope === "tokens") delete this.saved.tokens;
    if (scope === "all" || scope === "client") delete this.saved.client;
    if (scope === "all" || scope === "verifier") delete this.saved.verifier;
  }
}

const provider = new MemoryProvider();
const newTransport = () => new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });
const newClient = () => new Client({ name: "interop-ts-client", version: "1.0.0" });

let transport = newTransport();
let client = newClient();
try {
  await client.connect(transport);
  throw new Error("connected without authorization: the server did not ask for a token");
} catch (error) {
  if (!(error instanceof UnauthorizedError)) throw error;
}

const { value: line, done } = await lines.next();
if (done) throw new Error("stdin closed before the authorization response arrived");
const answer = JSON.parse(line);
if (answer.state !== provider.expectedState) throw new Error(`state mismatch: ${answer.state}`);
await transport.finishAuth(answer.code);

transport = newTransport();
client = newClient();
await client.connect(transport);
const tools = (await client.listTools()).tools.map((tool) => tool.name);
const whoami = await client.callTool({ name: "whoami", arguments: {} });
// The access token (the test probes the server with it after a revoke) and a fingerprint of
// the refresh token: enough for the test to see a refresh.
const fingerprint = (token) => (token ? createHash("sha256").update(token).digest("hex").slice(0, 16) : null);
const tokenState = () => ({
  access: provider.saved.tokens?.access_token ?? null,
  refresh: fingerprint(provider.saved.tokens?.refresh_token),
  scope: provider.saved.tokens?.scope ?? null,
});
emit("result", {
  tools,
  whoami: whoami.structuredContent ?? null,
  isError: whoami.isError ?? false,
  scope: provider.saved.tokens?.scope ?? null,
  hasRefreshToken: Boolean(provider.saved.tokens?.refresh_token),
  clientId: provider.saved.client?.client_id ?? null,
  tokens: tokenState(),
});

for (;;) {
  const { value: next, done: finished } = await lines.next();
  if (finished) break;
  const command = JSON.parse(next);
  if (command.cmd === "exit") break;
  if (command.cmd !== "call") throw new Error(`unknown command: ${next}`);
  try {
    const called = await client.callTool({ name: command.name, arguments: command.arguments ?? {} });
    emit("called", {
      structured: called.structuredContent ?? null,
      isError: called.isError ?? false,
      tokens: tokenState(),
    });
  } catch (error) {
    emit("error", {
      name: error?.constructor?.name ?? typeof error,
      message: String(error?.message ?? error),
      unauthorized: error instanceof UnauthorizedError,
      invalidated: provider.invalidated ?? [],
      tokens: tokenState(),
    });
  }
}
await client.close();
process.exit(0);
