// client.mjs — one Bedrock Runtime call made by the real Node AWS SDK v3, for Warden's Go tests.
//
//   node client.mjs <converse|converse-stream> <modelId> <prompt>
//
// Configuration comes from the environment, exactly as an unmodified Node app would get it:
//   AWS_ENDPOINT_URL_BEDROCK_RUNTIME  endpoint mode (read by the SDK itself); the SDK's default request
//                                     handler is kept, which for this client is HTTP/2 (h2c on http://)
//   AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, optional AWS_SESSION_TOKEN
//   HTTPS_PROXY (or https_proxy)      forward-proxy mode: NodeHttpHandler + HttpsProxyAgent, because the SDK
//                                     ignores HTTPS_PROXY and its HTTP/2 handler cannot use a proxy at all;
//                                     trust Warden's CA with NODE_EXTRA_CA_CERTS
//   WARDEN_JS_MAX_TOKENS              optional inferenceConfig.maxTokens
//   WARDEN_JS_TIMEOUT_MS              optional overall deadline (default 30000)
//   WARDEN_JS_MAX_ATTEMPTS            optional maxAttempts (default 1); above 1 the SDK's standard retry
//                                     strategy applies, and "attempts" says how many it made
//
// It prints exactly one JSON line on stdout and exits 0, whether the call succeeded or not:
//   {"ok":true,"op":..,"text":..,"events":[..],"usage":{..},"stopReason":..,"requestId":..}
//   {"ok":false,"op":..,"name":..,"message":..,"status":..,"code":..,"events":[..],"text":..}
// A non-zero exit means the script itself was misused or broken, never that the call failed.

import {
  BedrockRuntimeClient,
  ConverseCommand,
  ConverseStreamCommand,
} from "@aws-sdk/client-bedrock-runtime";

// The SDK warns on stderr about Node versions it will drop later; that noise helps no test.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

const OPS = new Set(["converse", "converse-stream"]);

function usage(msg) {
  process.stderr.write(`client.mjs: ${msg}\nusage: node client.mjs <converse|converse-stream> <modelId> <prompt>\n`);
  process.exit(2);
}

const [op, modelId, prompt] = process.argv.slice(2);
if (process.argv.length !== 5 || !OPS.has(op) || !modelId) {
  usage("bad arguments");
}

const env = process.env;
if (!env.AWS_REGION) usage("AWS_REGION is not set");

// Credentials are passed explicitly so the SDK never falls back to its default chain (shared files,
// container or instance metadata), which would make a test depend on the machine it runs on.
let credentials;
if (env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) {
  credentials = {
    accessKeyId: env.AWS_ACCESS_KEY_ID,
    secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
    ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
  };
} else {
  usage("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set");
}

const proxyURL = env.HTTPS_PROXY || env.https_proxy;

async function makeClient() {
  const cfg = { region: env.AWS_REGION, credentials, maxAttempts: Number(env.WARDEN_JS_MAX_ATTEMPTS || 1) };
  if (proxyURL) {
    // Imported lazily so endpoint mode loads nothing but the SDK.
    const { NodeHttpHandler } = await import("@smithy/node-http-handler");
    const { HttpsProxyAgent } = await import("https-proxy-agent");
    cfg.requestHandler = new NodeHttpHandler({ httpsAgent: new HttpsProxyAgent(proxyURL) });
  }
  return new BedrockRuntimeClient(cfg);
}

function input() {
  const req = { modelId, messages: [{ role: "user", content: [{ text: prompt ?? "" }] }] };
  if (env.WARDEN_JS_MAX_TOKENS) {
    req.inferenceConfig = { maxTokens: Number(env.WARDEN_JS_MAX_TOKENS) };
  }
  return req;
}

function emit(obj) {
  // Writes to pipes and files are synchronous on Linux, so exiting right after is safe.
  process.stdout.write(JSON.stringify(obj) + "\n");
}

async function main() {
  const client = await makeClient();
  const abort = new AbortController();
  const timeoutMs = Number(env.WARDEN_JS_TIMEOUT_MS || 30000);
  const timer = setTimeout(() => abort.abort(new Error(`client.mjs: no answer within ${timeoutMs} ms`)), timeoutMs);
  const opts = { abortSignal: abort.signal };

  const events = [];
  let text = "";
  try {
    if (op === "converse") {
      const out = await client.send(new ConverseCommand(input()), opts);
      for (const block of out.output?.message?.content ?? []) {
        if (typeof block.text === "string") text += block.text;
      }
      emit({
        ok: true,
        op,
        text,
        events,
        usage: out.usage ?? null,
        stopReason: out.stopReason ?? null,
        requestId: out.$metadata?.requestId ?? null,
        attempts: out.$metadata?.attempts ?? null,
      });
    } else {
      const out = await client.send(new ConverseStreamCommand(input()), opts);
      let usage = null;
      let stopReason = null;
      // Each union member has exactly one key set: its name is the event type.
      for await (const ev of out.stream ?? []) {
        const name = Object.keys(ev).find((k) => ev[k] !== undefined && k !== "$unknown") ?? "$unknown";
        events.push(name);
        if (name === "contentBlockDelta" && typeof ev.contentBlockDelta.delta?.text === "string") {
          text += ev.contentBlockDelta.delta.text;
        } else if (name === "messageStop") {
          stopReason = ev.messageStop.stopReason ?? null;
        } else if (name === "metadata") {
          usage = ev.metadata.usage ?? null;
        }
      }
      emit({ ok: true, op, text, events, usage, stopReason, requestId: out.$metadata?.requestId ?? null });
    }
  } catch (err) {
    const res = {
      ok: false,
      op,
      name: err?.name ?? "Error",
      message: err?.message ?? String(err),
      status: err?.$metadata?.httpStatusCode,
      code: err?.code,
      attempts: err?.$metadata?.attempts,
    };
    // A stream can fail after some events arrived (an exception frame mid-stream): say how far it got.
    if (events.length > 0) {
      res.events = events;
      res.text = text;
    }
    emit(res);
  } finally {
    clearTimeout(timer);
    client.destroy();
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`client.mjs: internal error: ${err?.stack ?? err}\n`);
    process.exit(1);
  },
);
