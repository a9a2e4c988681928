// Package bedrocktest is a faithful local Amazon Bedrock runtime for tests,
// benchmarks and offline development.
//
// It verifies SigV4 like AWS does (service "bedrock", the configured region,
// only the configured access keys), routes every runtime operation itself
// (it deliberately does not share code with Warden's router), answers with
// deterministic, realistically shaped bodies per model family, streams real
// application/vnd.amazon.eventstream frames, records every call, and injects
// faults (throttling, 5xx, delays, mid-stream exceptions, connection resets,
// gated streams). It speaks HTTP/1.1 and HTTP/2 (h2c with prior knowledge on
// the plain listener, h2 over TLS with NewTLSServer), like the real endpoint
// that Node's SDK reaches over HTTP/2 by default.
//
// Use it from any test with the real SDK:
//
//	srv := bedrocktest.NewServer(bedrocktest.Config{
//		Credentials: map[string]string{"AKIDTEST": "secret"},
//	})
//	defer srv.Close()
//	client := bedrockruntime.New(bedrockruntime.Options{
//		Region:       "us-east-1",
//		BaseEndpoint: aws.String(srv.URL),
//		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
//	})
//	out, err := client.Converse(ctx, &bedrockruntime.ConverseInput{...})
//	calls := srv.Calls() // what the emulator saw, SignatureOK included
//
// Or point any SDK or CLI at it from outside Go with
// AWS_ENDPOINT_URL_BEDROCK_RUNTIME=<srv.URL> and the configured keys.
//
// Faults are queued with Inject and consumed by the next matching requests:
//
//	srv.Inject(bedrocktest.Fault{Op: "Converse", Status: 429})           // ThrottlingException
//	srv.Inject(bedrocktest.Fault{Op: "ConverseStream", MidStreamException: "modelStreamErrorException"})
//	srv.Inject(bedrocktest.Fault{ResetAfterEvents: -1})                   // connection dropped
//
// Config.Service "bedrock-mantle" makes the emulator bedrock-mantle instead
// (signatures for the service bedrock-mantle; OpenAI chat completions and
// responses under /v1 and /openai/v1, Anthropic's Messages API under
// /anthropic/v1); the runtime also serves /openai/v1's chat completions and
// responses. Those routes answer with the OpenAI and Anthropic APIs' bodies,
// server-sent event streams and error shapes (compat.go). The ControlPlane
// emulator also answers Anthropic's Bedrock-only APIs under /anthropic/v1/.
//
// A bedrock-runtime emulator also serves the agent runtime (bedrock-agent-runtime, see
// agent.go): InvokeAgent and InvokeInlineAgent (chunk, trace, returnControl
// and files events), Retrieve, RetrieveAndGenerate and its stream, InvokeFlow,
// Rerank, GenerateQuery, OptimizePrompt, sessions with their invocations and
// steps, tags, and agent memory (a session ended with a memoryId leaves a
// summary). Point AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME at Server.URL.
// Config.Agents, KnowledgeBases and Flows are fixtures; Call.IDs records
// each call's identifiers and Call.ModelID the model its body names.
//
// Model families are picked from the foundation model id (system inference
// profile prefixes and ARNs are understood); map application inference
// profiles and other indirect ids to a foundation model with Config.Profiles.
// Token counts are ceil(len(text)/4), so tests can predict them.
package bedrocktest
