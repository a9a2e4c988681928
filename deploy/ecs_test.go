package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/warden-egress/warden/audit"
	"github.com/warden-egress/warden/authz/identity"
	"github.com/warden-egress/warden/authz/policy"
	"github.com/warden-egress/warden/bedrock"
	"github.com/warden-egress/warden/config"
)

// recorder is the ECS client's HTTP client: it keeps each request the SDK
// would send to AWS and answers as ECS does, so the SDK's own validation
// and serialisation run and the test sees the wire body.
type recorder struct {
	mu     sync.Mutex
	target []string
	bodies [][]byte
}

func (r *recorder) Do(req *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.target = append(r.target, req.Header.Get("X-Amz-Target"))
	r.bodies = append(r.bodies, body)
	r.mu.Unlock()
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/x-amz-json-1.1"}},
		Body: io.NopCloser(strings.NewReader(`{"taskDefinition":{"status":"ACTIVE","revision":1}}`)), Request: req}, nil
}

func ecsTaskDefinitionFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("ecs/*.json")
	if err != nil || len(files) < 2 {
		t.Fatalf("want the EC2 and Fargate task definitions in deploy/ecs, found %v (%v)", files, err)
	}
	return files
}

// loadTaskDefinition decodes a task definition file into the SDK's input
// type, refusing keys the API does not have (a misspelt key would
// otherwise vanish).
func loadTaskDefinition(t *testing.T, file string) (*ecs.RegisterTaskDefinitionInput, []byte) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var in ecs.RegisterTaskDefinitionInput
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		t.Fatalf("%s: not a RegisterTaskDefinition input: %v", file, err)
	}
	return &in, data
}

// TestECSTaskDefinitionsRegister sends each task definition through the
// real ECS client (aws-sdk-go-v2/service/ecs): its validation runs, and the
// body it would send AWS carries every field of the file.
func TestECSTaskDefinitionsRegister(t *testing.T) {
	for _, file := range ecsTaskDefinitionFiles(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			in, data := loadTaskDefinition(t, file)
			rec := &recorder{}
			client := ecs.New(ecs.Options{Region: "us-east-1", HTTPClient: rec, RetryMaxAttempts: 1,
				Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")})
			if _, err := client.RegisterTaskDefinition(context.Background(), in); err != nil {
				t.Fatalf("RegisterTaskDefinition: %v", err)
			}
			if len(rec.bodies) != 1 || rec.target[0] != "AmazonEC2ContainerServiceV20141113.RegisterTaskDefinition" {
				t.Fatalf("sent %v", rec.target)
			}
			var sent, file any
			if err := json.Unmarshal(rec.bodies[0], &sent); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(data, &file); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(sent, file) {
				a, _ := json.MarshalIndent(sent, "", " ")
				t.Errorf("the SDK would send something else than the file says:\n%s", a)
			}
		})
	}
	// The SDK's validation is live: a task definition without a family
	// or a container's name fails before anything is sent.
	in, _ := loadTaskDefinition(t, ecsTaskDefinitionFiles(t)[0])
	for name, edit := range map[string]func(*ecs.RegisterTaskDefinitionInput){
		"no family": func(i *ecs.RegisterTaskDefinitionInput) { i.Family = nil },
		"dependency without a condition": func(i *ecs.RegisterTaskDefinitionInput) {
			i.ContainerDefinitions[1].DependsOn = []types.ContainerDependency{{ContainerName: aws.String("warden")}}
		},
		"health check no command": func(i *ecs.RegisterTaskDefinitionInput) {
			i.ContainerDefinitions[0].HealthCheck.Command = nil
		},
	} {
		c := *in
		c.ContainerDefinitions = slices.Clone(in.ContainerDefinitions)
		hc := *in.ContainerDefinitions[0].HealthCheck
		c.ContainerDefinitions[0].HealthCheck = &hc
		edit(&c)
		rec := &recorder{}
		client := ecs.New(ecs.Options{Region: "us-east-1", HTTPClient: rec, RetryMaxAttempts: 1,
			Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")})
		if _, err := client.RegisterTaskDefinition(context.Background(), &c); err == nil || len(rec.bodies) != 0 {
			t.Errorf("%s: the SDK sent it (%v)", name, err)
		}
	}
}

// fargateSizes are Fargate's valid task cpu → memory (MiB) sizes (Linux).
func fargateMemoryValid(cpu, mem int) bool {
	between := func(lo, hi, step int) bool { return mem >= lo && mem <= hi && (mem-lo)%step == 0 }
	switch cpu {
	case 256:
		return mem == 512 || mem == 1024 || mem == 2048
	case 512:
		return between(1024, 4096, 1024)
	case 1024:
		return between(2048, 8192, 1024)
	case 2048:
		return between(4096, 16384, 1024)
	case 4096:
		return between(8192, 30720, 1024)
	case 8192:
		return between(16384, 61440, 4096)
	case 16384:
		return between(32768, 122880, 8192)
	}
	return false
}

func TestFargateMemoryTable(t *testing.T) {
	for _, c := range []struct {
		cpu, mem int
		ok       bool
	}{{256, 512, true}, {256, 3072, false}, {512, 1024, true}, {512, 512, false}, {1024, 8192, true}, {4096, 30720, true},
		{8192, 20480, true}, {8192, 18432, false}, {16384, 122880, true}, {300, 1024, false}} {
		if fargateMemoryValid(c.cpu, c.mem) != c.ok {
			t.Errorf("cpu %d memory %d: valid=%v, want %v", c.cpu, c.mem, !c.ok, c.ok)
		}
	}
}

func env(c types.ContainerDefinition, name string) (string, bool) {
	for _, kv := range c.Environment {
		if aws.ToString(kv.Name) == name {
			return aws.ToString(kv.Value), true
		}
	}
	return "", false
}

// TestECSTaskDefinitionsSemantics checks what the API accepts but would not
// work or would not hold: dependencies, sizes, capabilities, the embedded
// Warden config, the spool volume, the stop timeout against the drain.
func TestECSTaskDefinitionsSemantics(t *testing.T) {
	for _, file := range ecsTaskDefinitionFiles(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			in, _ := loadTaskDefinition(t, file)
			fargate := slices.Contains(in.RequiresCompatibilities, types.CompatibilityFargate)
			if fargate == strings.Contains(file, "ec2") {
				t.Fatalf("%s: file name and requiresCompatibilities %v disagree", file, in.RequiresCompatibilities)
			}
			if in.NetworkMode != types.NetworkModeAwsvpc {
				t.Errorf("networkMode %q: only awsvpc gives the task one loopback the app and Warden share (bridge: none; host: the instance's)", in.NetworkMode)
			}
			if in.PidMode != "" || in.IpcMode != "" {
				t.Errorf("pidMode %q ipcMode %q: a shared process namespace lets the app read Warden's memory and environment", in.PidMode, in.IpcMode)
			}
			cpu, _ := strconv.Atoi(aws.ToString(in.Cpu))
			mem, _ := strconv.Atoi(aws.ToString(in.Memory))
			if fargate && !fargateMemoryValid(cpu, mem) {
				t.Errorf("Fargate cpu %s memory %s is not a valid pair", aws.ToString(in.Cpu), aws.ToString(in.Memory))
			}
			byName := map[string]types.ContainerDefinition{}
			var sumCPU, sumMem int32
			for _, c := range in.ContainerDefinitions {
				byName[aws.ToString(c.Name)] = c
				sumCPU += c.Cpu
				sumMem += aws.ToInt32(c.Memory)
				for _, capName := range c.LinuxParameters.Capabilities.Add {
					t.Errorf("container %s adds capability %s: no container of a task with an ecs-sidecar Warden may (NET_ADMIN could answer at the agent's address)", aws.ToString(c.Name), capName)
				}
				if !slices.Equal(c.LinuxParameters.Capabilities.Drop, []string{"ALL"}) {
					t.Errorf("container %s drops %v, want [ALL]", aws.ToString(c.Name), c.LinuxParameters.Capabilities.Drop)
				}
				if c.Privileged != nil && *c.Privileged {
					t.Errorf("container %s is privileged", aws.ToString(c.Name))
				}
				for _, d := range c.DependsOn {
					dep, ok := byName[aws.ToString(d.ContainerName)]
					if !ok {
						for _, o := range in.ContainerDefinitions {
							if aws.ToString(o.Name) == aws.ToString(d.ContainerName) {
								dep, ok = o, true
							}
						}
					}
					if !ok {
						t.Errorf("%s depends on %s, which is not in the task", aws.ToString(c.Name), aws.ToString(d.ContainerName))
						continue
					}
					if d.Condition == types.ContainerConditionHealthy && (dep.HealthCheck == nil || len(dep.HealthCheck.Command) == 0) {
						t.Errorf("%s waits for %s to be HEALTHY, which has no health check", aws.ToString(c.Name), aws.ToString(d.ContainerName))
					}
				}
			}
			if cpu > 0 && int(sumCPU) > cpu || mem > 0 && int(sumMem) > mem {
				t.Errorf("containers take cpu %d memory %d of the task's %d/%d", sumCPU, sumMem, cpu, mem)
			}
			w, ok := byName["warden"]
			app, okApp := byName["app"]
			if !ok || !okApp {
				t.Fatalf("want containers warden and app, have %v", slices.Collect(func(yield func(string) bool) {
					for n := range byName {
						if !yield(n) {
							return
						}
					}
				}))
			}
			checkWarden(t, in, w, app, fargate)
		})
	}
}

func checkWarden(t *testing.T, in *ecs.RegisterTaskDefinitionInput, w, app types.ContainerDefinition, fargate bool) {
	t.Helper()
	if !aws.ToBool(w.Essential) {
		t.Error("warden is not essential: the task would run on without it")
	}
	if aws.ToString(w.User) != "65532:65532" || !aws.ToBool(w.ReadonlyRootFilesystem) {
		t.Errorf("warden runs as %q, read-only root %v; want 65532:65532, true", aws.ToString(w.User), aws.ToBool(w.ReadonlyRootFilesystem))
	}
	if !slices.Equal(w.Command, []string{"serve", "--config-env", "WARDEN_CONFIG"}) {
		t.Errorf("warden command %v: the policy comes with the task definition, never baked into the image", w.Command)
	}
	raw, ok := env(w, "WARDEN_CONFIG")
	if !ok {
		t.Fatal("warden has no WARDEN_CONFIG")
	}
	cfg, err := config.ParseConfig([]byte(raw))
	if err != nil {
		t.Fatalf("the embedded Warden config: %v", err)
	}
	if !slices.Equal(cfg.Identity.Sources, []string{identity.SourceECSSidecar}) || cfg.Identity.ECSSidecar.Fargate != fargate {
		t.Errorf("identity sources %v fargate %v; want [ecs-sidecar] and fargate=%v", cfg.Identity.Sources, cfg.Identity.ECSSidecar.Fargate, fargate)
	}
	if _, ok := env(app, "WARDEN_CONFIG"); ok {
		t.Error("the app container holds Warden's config")
	}
	if cfg.Bundle != nil {
		checkBundleWarden(t, in, w, cfg)
	}
	// The app reaches the endpoint listener; the health check the admin.
	for _, name := range []string{"AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME", "ANTHROPIC_BEDROCK_BASE_URL"} {
		v, _ := env(app, name)
		if u, err := url.Parse(v); err != nil || u.Host != cfg.Listen.Endpoint || u.Scheme != "http" {
			t.Errorf("app %s=%q, want http://%s", name, v, cfg.Listen.Endpoint)
		}
	}
	if hc := w.HealthCheck; hc == nil || len(hc.Command) < 5 || !slices.Equal(hc.Command[:3], []string{"CMD", "/warden", "healthcheck"}) ||
		hc.Command[4] != "http://"+cfg.Listen.Admin+"/readyz" {
		t.Errorf("warden health check %v, want CMD /warden healthcheck --url http://%s/readyz (distroless: no shell)", w.HealthCheck, cfg.Listen.Admin)
	}
	// The spool: a volume at the image's VOLUME path, which gives it
	// 65532's ownership.
	spool := cfg.Audit.Spool.Dir
	if spool == "" {
		spool = audit.DefaultSpoolDir
	}
	mounted := false
	for _, m := range w.MountPoints {
		if aws.ToString(m.ContainerPath) == spool && !aws.ToBool(m.ReadOnly) {
			for _, v := range in.Volumes {
				if aws.ToString(v.Name) == aws.ToString(m.SourceVolume) && v.Host == nil && v.EfsVolumeConfiguration == nil {
					mounted = true
				}
			}
		}
	}
	if !mounted {
		t.Errorf("no task volume mounted writable at %s (the image's VOLUME: a new volume there is owned by 65532)", spool)
	}
	// The platform's SIGKILL comes after the drain.
	if st := aws.ToInt32(w.StopTimeout); time.Duration(st)*time.Second <= cfg.Shutdown.Grace() || st > 120 {
		t.Errorf("warden stopTimeout %ds: want more than shutdown.grace_period %s and at most 120", st, cfg.Shutdown.Grace())
	}
	// The role the platform passes is what the policy selects.
	role := aws.ToString(in.TaskRoleArn)
	if !strings.Contains(role, ":role/warden/") {
		t.Errorf("task role %s is not under /warden/ (the SCP's exemption and its guard)", role)
	}
	decide(t, in, raw, role, fargate)
}

// checkBundleWarden: a Warden whose policy comes from signed bundles holds
// none of its own, follows an S3 prefix or a service over HTTPS with at
// least one trusted key, names its place in bundles' scopes (fleet, and a
// namespace: there is no POD_NAMESPACE on ECS), and keeps its last good
// bundle on a writable task volume.
func checkBundleWarden(t *testing.T, in *ecs.RegisterTaskDefinitionInput, w types.ContainerDefinition, cfg *config.Config) {
	t.Helper()
	b := cfg.Bundle
	if len(cfg.Apps) != 0 || len(cfg.Deny) != 0 {
		t.Errorf("a bundle-fed Warden's config holds %d apps and %d deny rules", len(cfg.Apps), len(cfg.Deny))
	}
	if !strings.HasPrefix(b.URL, "s3://") && !strings.HasPrefix(b.URL, "https://") {
		t.Errorf("bundle.url %q: want an s3:// prefix or the service's https:// URL", b.URL)
	}
	if len(b.TrustedKeys) == 0 {
		t.Error("bundle.trusted_keys is empty")
	}
	if b.Fleet == "" || b.Namespace == "" {
		t.Errorf("bundle fleet %q namespace %q: on ECS both must be set (no POD_NAMESPACE to default to)", b.Fleet, b.Namespace)
	}
	cache := b.CacheDir
	if cache == "" {
		cache = config.DefaultBundleCacheDir
	}
	mounted := false
	for _, m := range w.MountPoints {
		if aws.ToString(m.ContainerPath) == cache && !aws.ToBool(m.ReadOnly) {
			for _, v := range in.Volumes {
				if aws.ToString(v.Name) == aws.ToString(m.SourceVolume) && v.Host == nil && v.EfsVolumeConfiguration == nil {
					mounted = true
				}
			}
		}
	}
	if !mounted {
		t.Errorf("no task volume mounted writable at the bundle cache %s (the image's VOLUME, owned by 65532): the last good bundle would not survive a restart", cache)
	}
}

// ecsBundlePolicy is the policy the security team publishes for the
// chatbot task of fargate-bundle-task-definition.json (the apps the other
// task definitions embed); decide lays it over a bundle-fed config as a
// Warden applying the bundle does (config.WithPolicy).
const ecsBundlePolicy = `apps:
  - name: chatbot-prod
    match:
      tags:
        ecs.task_role_arn: arn:aws:iam::111122223333:role/warden/app-chatbot
        aws.account: "111122223333"
    allow:
      models: ["anthropic.claude-3-5-haiku-*", "us.anthropic.claude-*"]
      operations: [Converse, ConverseStream]
      regions: ["us-*"]
      profile_scopes: [us]
`

// decide runs the task's own identity, as the ecs-sidecar source reads it
// from an ECS agent serving this task's metadata and role, through the
// embedded policy: the task's role is allowed the app's calls, another
// role under /warden/ is not.
func decide(t *testing.T, in *ecs.RegisterTaskDefinitionInput, raw, role string, fargate bool) {
	t.Helper()
	launch := "EC2"
	if fargate {
		launch = "FARGATE"
	}
	for _, tc := range []struct {
		role  string
		allow bool
	}{{role, true}, {strings.Replace(role, "app-chatbot", "app-other", 1), false}} {
		task := fmt.Sprintf(`{"Cluster":"arn:aws:ecs:us-east-1:111122223333:cluster/prod","TaskARN":"arn:aws:ecs:us-east-1:111122223333:task/prod/0f1e2d3c4b5a69788796a5b4c3d2e1f0",
"Family":%q,"Revision":"1","LaunchType":%q,"ServiceName":"chatbot","Containers":[{"Name":"warden","Networks":[{"NetworkMode":"awsvpc"}]},{"Name":"app","Networks":[{"NetworkMode":"awsvpc"}]}]}`,
			aws.ToString(in.Family), launch)
		agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/v4/abc/task", "/v4/abc/taskWithTags":
				_, _ = io.WriteString(w, task)
			case "/v2/credentials/xyz":
				_, _ = fmt.Fprintf(w, `{"RoleArn":%q,"AccessKeyId":"ASIAX","SecretAccessKey":"s","Token":"t","Expiration":"2030-01-01T00:00:00Z"}`, tc.role)
			default:
				http.NotFound(w, r)
			}
		}))
		cfg, err := config.ParseConfig([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Bundle != nil {
			if cfg, err = config.WithPolicy(cfg, []byte(ecsBundlePolicy)); err != nil {
				t.Fatalf("the published policy over the task's config: %v", err)
			}
		}
		cfg.Identity.ECSSidecar.URL = agent.URL + "/v4/abc"
		t.Setenv(identity.ECSCredentialsEnv, "/v2/credentials/xyz")
		ctx, cancel := context.WithCancel(context.Background())
		r, err := identity.NewResolver(ctx, cfg.Identity, identity.Deps{ProcStatus: func() ([]byte, error) { return []byte("CapEff:\t0000000000000000\n"), nil }})
		if err != nil {
			cancel()
			agent.Close()
			t.Fatalf("the embedded identity config: %v", err)
		}
		id, err := r.Resolve(ctx, &identity.Conn{Remote: netip.MustParseAddrPort("127.0.0.1:40000")})
		cancel()
		agent.Close()
		if err != nil {
			t.Fatal(err)
		}
		p, err := policy.New(cfg.Policy())
		if err != nil {
			t.Fatal(err)
		}
		m, _ := bedrock.ParseModelID("anthropic.claude-3-5-haiku-20241022-v1:0")
		d := p.Decide(id, policy.Call{Op: bedrock.OpConverse, Model: &m})
		if d.Allow != tc.allow {
			t.Errorf("role %s: Converse allowed=%v (%s), want %v", tc.role, d.Allow, d.Reason, tc.allow)
		}
		if tag := id.Tags[identity.TagECSFamily]; tag.Strong {
			t.Errorf("ecs.family is strong without platform_task_definitions: %+v", tag)
		}
	}
}
