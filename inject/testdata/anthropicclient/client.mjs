// client.mjs — one Messages call made by Anthropic's Bedrock SDK (@anthropic-ai/bedrock-sdk), for the
// injector's Go tests: it proves that ANTHROPIC_BEDROCK_BASE_URL, which the injector writes into every app
// container, takes this SDK to Warden.
//
//   node client.mjs <create|stream> <modelId> <prompt>
//
// Configuration comes from the environment only, as an unmodified app would get it:
//   ANTHROPIC_BEDROCK_BASE_URL   read by the SDK (the injector sets it to Warden's endpoint)
//   AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY   read by the SDK's AWS credential chain
//
// It prints one JSON line and exits 0 whether the call succeeded or not:
//   {"ok":true,"text":..,"baseURL":..}   {"ok":false,"status":..,"name":..,"message":..,"baseURL":..}

import AnthropicBedrock from "@anthropic-ai/bedrock-sdk";

const [op, model, prompt] = process.argv.slice(2);
if (process.argv.length !== 5 || !["create", "stream"].includes(op)) {
  process.stderr.write("usage: node client.mjs <create|stream> <modelId> <prompt>\n");
  process.exit(2);
}

const client = new AnthropicBedrock({ maxRetries: 0, timeout: 30000 });
const req = { model, max_tokens: 64, messages: [{ role: "user", content: prompt }] };

function emit(o) {
  process.stdout.write(JSON.stringify({ ...o, baseURL: client.baseURL }) + "\n");
}

try {
  let text = "";
  if (op === "create") {
    const msg = await client.messages.create(req);
    text = msg.content.filter((b) => b.type === "text").map((b) => b.text).join("");
  } else {
    const stream = await client.messages.create({ ...req, stream: true });
    for await (const ev of stream) {
      if (ev.type === "content_block_delta" && ev.delta.type === "text_delta") text += ev.delta.text;
    }
  }
  emit({ ok: true, text });
} catch (e) {
  emit({ ok: false, status: e.status ?? 0, name: e.constructor?.name ?? "Error", message: String(e.message ?? e) });
}
