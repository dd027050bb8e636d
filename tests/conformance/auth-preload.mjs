// Node preload for the MCP conformance CLI (`conformance server --url …` has no header option).
//
// Usage: NODE_OPTIONS=--import=/abs/path/auth-preload.mjs with
//   AICONNECTOR_CONFORMANCE_URL   the MCP endpoint URL (requests under it get the header)
//   AICONNECTOR_CONFORMANCE_AUTH  the full Authorization header value, e.g. "Basic …"
//
// Two request paths exist inside the CLI, and both are covered:
//   1. globalThis.fetch (the SDK client transport and most scenarios): wrapped below.
//   2. undici.request (dns-rebinding-protection sends a forged Host header, which fetch
//      forbids): handled by composing an interceptor onto undici's global dispatcher, which
//      both undici.request and Node's fetch go through.
// The header is only added when the request has none, and only for URLs under the MCP URL.

import { realpathSync } from "node:fs";
import { createRequire } from "node:module";

const AUTH = process.env.AICONNECTOR_CONFORMANCE_AUTH;
const MCP_URL = process.env.AICONNECTOR_CONFORMANCE_URL;

if (AUTH) {
  if (!MCP_URL) {
    throw new Error("auth-preload: AICONNECTOR_CONFORMANCE_AUTH is set but AICONNECTOR_CONFORMANCE_URL is not");
  }
  installFetchWrapper();
  installDispatcherInterceptor();
}

function targetsMcp(url) {
  let href;
  try {
    href = new URL(String(url)).href;
  } catch {
    return false;
  }
  return href === MCP_URL || href.startsWith(MCP_URL + "/") || href.startsWith(MCP_URL + "?");
}

function installFetchWrapper() {
  const originalFetch = globalThis.fetch;
  globalThis.fetch = function fetchWithAuth(input, init) {
    const url = input instanceof Request ? input.url : input instanceof URL ? input.href : String(input);
    if (!targetsMcp(url)) {
      return originalFetch(input, init);
    }
    const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
    if (!headers.has("authorization")) {
      headers.set("authorization", AUTH);
    }
    return originalFetch(input, { ...init, headers });
  };
}

function hasAuthorization(headers) {
  if (headers == null) return false;
  if (Array.isArray(headers)) {
    if (headers.length > 0 && Array.isArray(headers[0])) {
      return headers.some(([k]) => String(k).toLowerCase() === "authorization");
    }
    for (let i = 0; i < headers.length; i += 2) {
      if (String(headers[i]).toLowerCase() === "authorization") return true;
    }
    return false;
  }
  if (typeof headers[Symbol.iterator] === "function") {
    for (const [k] of headers) if (String(k).toLowerCase() === "authorization") return true;
    return false;
  }
  return Object.keys(headers).some((k) => k.toLowerCase() === "authorization");
}

function withAuthorization(headers) {
  if (hasAuthorization(headers)) return headers;
  if (headers == null) return { authorization: AUTH };
  if (Array.isArray(headers)) {
    return headers.length > 0 && Array.isArray(headers[0])
      ? [...headers, ["authorization", AUTH]]
      : [...headers, "authorization", AUTH];
  }
  if (typeof headers[Symbol.iterator] === "function") {
    return [...headers, ["authorization", AUTH]];
  }
  return { ...headers, authorization: AUTH };
}

function installDispatcherInterceptor() {
  // Load the same undici copy the CLI imports (resolved from the CLI script's real path), so
  // its global dispatcher is the one the CLI would have created anyway.
  let undici;
  try {
    const main = process.argv[1] ? realpathSync(process.argv[1]) : undefined;
    if (!main) return;
    undici = createRequire(main)("undici");
  } catch {
    return; // no undici next to the CLI: only fetch is covered
  }
  const base = undici.getGlobalDispatcher();
  if (typeof base.compose !== "function") return;
  const addAuth = (dispatch) => (opts, handler) => {
    let url;
    try {
      url = new URL(opts.path ?? "/", opts.origin).href;
    } catch {
      url = undefined;
    }
    if (url && targetsMcp(url)) {
      opts = { ...opts, headers: withAuthorization(opts.headers) };
    }
    return dispatch(opts, handler);
  };
  undici.setGlobalDispatcher(base.compose(addAuth));
}
