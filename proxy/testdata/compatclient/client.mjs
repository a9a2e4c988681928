// client.mjs — one call made by the OpenAI Node SDK (openai) or Anthropic's Bedrock SDK
// (@anthropic-ai/bedrock-sdk), for Warden's Go tests on the OpenAI-compatible and Anthropic routes
// (proxy/nodecompat_test.go). Neither SDK is configured beyond what an unmodified app would set.
//
//   node client.mjs <op> <model> <prompt>
//
// ops of the OpenAI SDK (configured by OPENAI_BASE_URL and OPENAI_API_KEY, read by the SDK itself):
//   chat           client.chat.completions.create
//   chat-stream    the same with stream: true
//   response       client.responses.create
//   response-stream  the same with stream: true
// ops of Anthropic's Bedrock SDK (ANTHROPIC_BEDROCK_BASE_URL, AWS_REGION, AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, read by the SDK and its AWS credential chain):
//   messages         client.messages.create
//   messages-stream  the same with stream: true
//   sessions-create  client.beta.sessions.create (a Bedrock-only call; <model> is the agent id)
//   agents-list      client.beta.agents.list (a Bedrock-only call; <model> and <prompt> are ignored)
//
// It prints one JSON line and exits 0 whether the call succeeded or not:
//   {"ok":true,"text":..,"wire":..}
//   {"ok":false,"status":..,"name":..,"code":..,"message":..,"text":..,"wire":..}
// "text" is what the app assembled from the answer (for a stream, the deltas before any error); "wire" is
// every byte of the answer's body the SDK was handed, so a test can check that nothing else arrived.

// Each SDK is imported only for its own ops (loading both costs a second per run).

const [op, model, prompt] = process.argv.slice(2);
const ops = ["chat", "chat-stream", "response", "response-stream", "messages", "messages-stream", "sessions-create", "agents-list"];
if (process.argv.length !== 5 || !ops.includes(op)) {
  process.stderr.write(`usage: node client.mjs <${ops.join("|")}> <model> <prompt>\n`);
  process.exit(2);
}

// teeFetch hands the SDK the response as fetch returned it, keeping a copy of its body in wire.
const wire = [];
const pending = [];
async function teeFetch(url, init) {
  const resp = await fetch(url, init);
  if (!resp.body) return resp;
  const [a, b] = resp.body.tee();
  pending.push(
    (async () => {
      const dec = new TextDecoder();
      for await (const chunk of b) wire.push(dec.decode(chunk, { stream: true }));
    })().catch(() => {}),
  );
  return new Response(a, { status: resp.status, statusText: resp.statusText, headers: resp.headers });
}

let text = "";
async function emit(o) {
  await Promise.race([Promise.all(pending), new Promise((r) => setTimeout(r, 2000))]);
  process.stdout.write(JSON.stringify({ ...o, text, wire: wire.join("") }) + "\n");
}

try {
  if (["chat", "chat-stream", "response", "response-stream"].includes(op)) {
    const { default: OpenAI } = await import("openai");
    const client = new OpenAI({ maxRetries: 0, timeout: 30000, fetch: teeFetch });
    if (op === "chat") {
      const c = await client.chat.completions.create({ model, messages: [{ role: "user", content: prompt }] });
      text = c.choices[0]?.message?.content ?? "";
    } else if (op === "chat-stream") {
      const st = await client.chat.completions.create({ model, messages: [{ role: "user", content: prompt }], stream: true });
      for await (const ch of st) text += ch.choices[0]?.delta?.content ?? "";
    } else if (op === "response") {
      const r = await client.responses.create({ model, input: prompt });
      text = r.output_text ?? "";
    } else {
      const st = await client.responses.create({ model, input: prompt, stream: true });
      for await (const ev of st) if (ev.type === "response.output_text.delta") text += ev.delta;
    }
  } else {
    const { default: AnthropicBedrock } = await import("@anthropic-ai/bedrock-sdk");
    const client = new AnthropicBedrock({ maxRetries: 0, timeout: 30000, fetch: teeFetch });
    const req = { model, max_tokens: 64, messages: [{ role: "user", content: prompt }] };
    if (op === "messages") {
      const msg = await client.messages.create(req);
      text = msg.content.filter((b) => b.type === "text").map((b) => b.text).join("");
    } else if (op === "messages-stream") {
      const st = await client.messages.create({ ...req, stream: true });
      for await (const ev of st) if (ev.type === "content_block_delta" && ev.delta.type === "text_delta") text += ev.delta.text;
    } else if (op === "sessions-create") {
      const s = await client.beta.sessions.create({ agent: model });
      text = s.id ?? s.type ?? "";
    } else {
      const page = await client.beta.agents.list();
      text = JSON.stringify(page.data ?? []);
    }
  }
  await emit({ ok: true });
} catch (e) {
  await emit({
    ok: false,
    status: e.status ?? 0,
    name: e.constructor?.name ?? "Error",
    code: e.code ?? e.error?.type ?? "",
    message: String(e.message ?? e),
  });
}
