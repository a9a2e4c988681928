// client.mjs — one Bedrock Agent Runtime call made by the real Node AWS SDK v3, for Warden's Go tests.
//
//   node client.mjs invoke-agent <agentId> <agentAliasId> <sessionId> <inputText>
//   node client.mjs retrieve <knowledgeBaseId> <query>
//
// Configuration comes from the environment, as an unmodified Node app would get it:
//   AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME  endpoint mode (read by the SDK itself)
//   AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, optional AWS_SESSION_TOKEN
//   WARDEN_JS_TIMEOUT_MS                    optional overall deadline (default 30000)
//
// It prints exactly one JSON line on stdout and exits 0, whether the call succeeded or not:
//   {"ok":true,"op":..,"text":..,"events":[..],"results":n}
//   {"ok":false,"op":..,"name":..,"message":..,"status":..,"events":[..],"text":..}
// A non-zero exit means the script itself was misused or broken, never that the call failed.

import {
  BedrockAgentRuntimeClient,
  InvokeAgentCommand,
  RetrieveCommand,
} from "@aws-sdk/client-bedrock-agent-runtime";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

function usage(msg) {
  process.stderr.write(
    `client.mjs: ${msg}\nusage: node client.mjs invoke-agent <agentId> <aliasId> <sessionId> <text> | retrieve <kbId> <query>\n`,
  );
  process.exit(2);
}

const [op, ...args] = process.argv.slice(2);
if (!(op === "invoke-agent" && args.length === 4) && !(op === "retrieve" && args.length === 2)) {
  usage("bad arguments");
}
const env = process.env;
if (!env.AWS_REGION) usage("AWS_REGION is not set");
if (!env.AWS_ACCESS_KEY_ID || !env.AWS_SECRET_ACCESS_KEY) usage("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set");
// Passed explicitly so the SDK never falls back to its default chain.
const credentials = {
  accessKeyId: env.AWS_ACCESS_KEY_ID,
  secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
  ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
};

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

async function main() {
  const client = new BedrockAgentRuntimeClient({ region: env.AWS_REGION, credentials, maxAttempts: 1 });
  const abort = new AbortController();
  const timeoutMs = Number(env.WARDEN_JS_TIMEOUT_MS || 30000);
  const timer = setTimeout(() => abort.abort(new Error(`client.mjs: no answer within ${timeoutMs} ms`)), timeoutMs);
  const opts = { abortSignal: abort.signal };
  const events = [];
  let text = "";
  try {
    if (op === "invoke-agent") {
      const [agentId, agentAliasId, sessionId, inputText] = args;
      const out = await client.send(new InvokeAgentCommand({ agentId, agentAliasId, sessionId, inputText }), opts);
      const dec = new TextDecoder();
      for await (const ev of out.completion ?? []) {
        const name = Object.keys(ev).find((k) => ev[k] !== undefined && k !== "$unknown") ?? "$unknown";
        events.push(name);
        if (name === "chunk" && ev.chunk.bytes) text += dec.decode(ev.chunk.bytes, { stream: true });
      }
      emit({ ok: true, op, text, events, sessionId: out.sessionId ?? null });
    } else {
      const [knowledgeBaseId, query] = args;
      const out = await client.send(new RetrieveCommand({ knowledgeBaseId, retrievalQuery: { text: query } }), opts);
      const results = out.retrievalResults ?? [];
      for (const r of results) text += (r.content?.text ?? "") + "\n";
      emit({ ok: true, op, text, events, results: results.length });
    }
  } catch (err) {
    emit({
      ok: false,
      op,
      name: err?.name ?? "Error",
      message: err?.message ?? String(err),
      status: err?.$metadata?.httpStatusCode ?? null,
      code: err?.code ?? null,
      events,
      text,
    });
  } finally {
    clearTimeout(timer);
  }
}

main().catch((err) => {
  process.stderr.write(`client.mjs: ${err?.stack ?? err}\n`);
  process.exit(1);
});
