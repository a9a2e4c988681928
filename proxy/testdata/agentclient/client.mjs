// client.mjs — one Bedrock Agent Runtime call made by the real Node AWS SDK v3, for Warden's Go tests.
//
//   node client.mjs invoke-agent <agentId> <agentAliasId> <sessionId> <inputText>
//   node client.mjs retrieve <knowledgeBaseId> <query>
//   node client.mjs invoke-inline-agent <sessionId> <foundationModel> <inputText>
//   node client.mjs rag <knowledgeBaseId> <modelArn> <query>           RetrieveAndGenerate over a knowledge base
//   node client.mjs rag-s3 <s3Uri> <modelArn> <query>                  RetrieveAndGenerate over an external S3 source
//   node client.mjs rag-stream <knowledgeBaseId> <modelArn> <query>    RetrieveAndGenerateStream
//   node client.mjs create-session                                     CreateSession (prints sessionId)
//   node client.mjs get-session <sessionId>                            GetSession
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
  CreateSessionCommand,
  GetSessionCommand,
  InvokeAgentCommand,
  InvokeInlineAgentCommand,
  RetrieveAndGenerateCommand,
  RetrieveAndGenerateStreamCommand,
  RetrieveCommand,
} from "@aws-sdk/client-bedrock-agent-runtime";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

function usage(msg) {
  process.stderr.write(
    `client.mjs: ${msg}\nusage: node client.mjs invoke-agent <agentId> <aliasId> <sessionId> <text> | retrieve <kbId> <query> |\n` +
      `  invoke-inline-agent <sessionId> <model> <text> | rag|rag-stream <kbId> <modelArn> <query> | rag-s3 <s3Uri> <modelArn> <query> |\n` +
      `  create-session | get-session <sessionId>\n`,
  );
  process.exit(2);
}

const [op, ...args] = process.argv.slice(2);
const arity = {
  "invoke-agent": 4,
  retrieve: 2,
  "invoke-inline-agent": 3,
  rag: 3,
  "rag-s3": 3,
  "rag-stream": 3,
  "create-session": 0,
  "get-session": 1,
};
if (arity[op] === undefined || arity[op] !== args.length) {
  usage("bad arguments");
}
// The instruction an inline agent runs with (Bedrock wants at least 40 characters).
const INSTRUCTION = "answer questions about Warden briefly and in plain words";
// eventName is the member an event-stream union event carries.
const eventName = (ev) => Object.keys(ev).find((k) => ev[k] !== undefined && k !== "$unknown") ?? "$unknown";
function ragConfig(source, modelArn) {
  if (op === "rag-s3") {
    return {
      type: "EXTERNAL_SOURCES",
      externalSourcesConfiguration: { modelArn, sources: [{ sourceType: "S3", s3Location: { uri: source } }] },
    };
  }
  return { type: "KNOWLEDGE_BASE", knowledgeBaseConfiguration: { knowledgeBaseId: source, modelArn } };
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
        const name = eventName(ev);
        events.push(name);
        if (name === "chunk" && ev.chunk.bytes) text += dec.decode(ev.chunk.bytes, { stream: true });
      }
      emit({ ok: true, op, text, events, sessionId: out.sessionId ?? null });
    } else if (op === "invoke-inline-agent") {
      const [sessionId, foundationModel, inputText] = args;
      const out = await client.send(
        new InvokeInlineAgentCommand({ sessionId, foundationModel, instruction: INSTRUCTION, inputText }),
        opts,
      );
      const dec = new TextDecoder();
      for await (const ev of out.completion ?? []) {
        const name = eventName(ev);
        events.push(name);
        if (name === "chunk" && ev.chunk.bytes) text += dec.decode(ev.chunk.bytes, { stream: true });
      }
      emit({ ok: true, op, text, events, sessionId: out.sessionId ?? null });
    } else if (op === "rag" || op === "rag-s3") {
      const [source, modelArn, query] = args;
      const out = await client.send(
        new RetrieveAndGenerateCommand({ input: { text: query }, retrieveAndGenerateConfiguration: ragConfig(source, modelArn) }),
        opts,
      );
      text = out.output?.text ?? "";
      emit({ ok: true, op, text, events, results: (out.citations ?? []).length, sessionId: out.sessionId ?? null });
    } else if (op === "rag-stream") {
      const [source, modelArn, query] = args;
      const out = await client.send(
        new RetrieveAndGenerateStreamCommand({
          input: { text: query },
          retrieveAndGenerateConfiguration: ragConfig(source, modelArn),
        }),
        opts,
      );
      for await (const ev of out.stream ?? []) {
        const name = eventName(ev);
        events.push(name);
        if (name === "output") text += ev.output.text ?? "";
      }
      emit({ ok: true, op, text, events, sessionId: out.sessionId ?? null });
    } else if (op === "create-session") {
      const out = await client.send(new CreateSessionCommand({}), opts);
      emit({ ok: true, op, text, events, sessionId: out.sessionId ?? null });
    } else if (op === "get-session") {
      const [sessionIdentifier] = args;
      const out = await client.send(new GetSessionCommand({ sessionIdentifier }), opts);
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
