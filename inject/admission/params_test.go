package admission

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func exampleParams(t testing.TB) *Params {
	t.Helper()
	p, err := ExampleParams()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseParamsExample(t *testing.T) {
	p := exampleParams(t)
	if p.Audience != "warden.bedrock" || p.InjectorNamespace != "warden-system" {
		t.Fatalf("audience %q, injector namespace %q", p.Audience, p.InjectorNamespace)
	}
	if len(p.Images) != 2 {
		t.Fatalf("want N and N-1 images, got %v", p.Images)
	}
	wantEnv := map[string]EnvRule{
		"WARDEN_CONFIG":               {Name: "WARDEN_CONFIG"},
		"POD_NAMESPACE":               {Name: "POD_NAMESPACE", Kind: EnvNamespace},
		"POD_SERVICE_ACCOUNT":         {Name: "POD_SERVICE_ACCOUNT", Kind: EnvServiceAccount},
		"POD_NAME":                    {Name: "POD_NAME", Kind: EnvField, Arg: "metadata.name"},
		"AWS_WEB_IDENTITY_TOKEN_FILE": {Name: "AWS_WEB_IDENTITY_TOKEN_FILE", Kind: EnvValue, Arg: "/var/run/secrets/warden/token"},
	}
	for _, r := range p.Env {
		if w, ok := wantEnv[r.Name]; ok {
			if r != w {
				t.Errorf("env %s: got %+v, want %+v", r.Name, r, w)
			}
			delete(wantEnv, r.Name)
		}
	}
	if len(wantEnv) > 0 {
		t.Errorf("env rules missing: %v", wantEnv)
	}
}

// TestParamsRoundTrip: ConfigMap then ParseParams gives the same Params.
func TestParamsRoundTrip(t *testing.T) {
	p := exampleParams(t)
	cm, err := p.ConfigMap()
	if err != nil {
		t.Fatal(err)
	}
	if cm.Name != ParamsName || cm.Namespace != ParamsNamespace {
		t.Fatalf("ConfigMap %s/%s", cm.Namespace, cm.Name)
	}
	back, err := ParseParams(cm)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p, back) {
		t.Fatalf("round trip changed the parameters:\n got %+v\nwant %+v", back, p)
	}
}

func TestParseParamsErrors(t *testing.T) {
	base := func() map[string]string {
		cm, err := exampleParams(t).ConfigMap()
		if err != nil {
			t.Fatal(err)
		}
		return cm.Data
	}
	for _, tc := range []struct {
		name string
		edit func(d map[string]string)
		key  string
		want string
	}{
		{"missing audience", func(d map[string]string) { delete(d, "audience") }, "audience", "missing"},
		{"unknown key", func(d map[string]string) { d["image"] = "x" }, "image", "unknown key"},
		{"empty audience", func(d map[string]string) { d["audience"] = "" }, "audience", "non-empty single line"},
		{"tag instead of digest", func(d map[string]string) { d["images"] = "ghcr.io/warden-egress/warden:v1" }, "images", "not pinned by digest"},
		{"short digest", func(d map[string]string) { d["images"] = "ghcr.io/w@sha256:abc" }, "images", "not pinned by digest"},
		{"no images", func(d map[string]string) { d["images"] = "\n \n" }, "images", "at least one image"},
		{"no args", func(d map[string]string) { d["args"] = "" }, "args", "required"},
		{"bad namespace", func(d map[string]string) { d["injectorNamespace"] = "Warden_System" }, "injectorNamespace", "RFC 1123"},
		{"unknown env rule", func(d map[string]string) { d["env"] = "A=secret:x" }, "env", `unknown rule "secret"`},
		{"env value without argument", func(d map[string]string) { d["env"] = "A=value" }, "env", "needs an argument"},
		{"env namespace with argument", func(d map[string]string) { d["env"] = "A=namespace:x" }, "env", "takes no argument"},
		{"bad env name", func(d map[string]string) { d["env"] = "1A" }, "env", "not an environment variable name"},
		{"env listed twice", func(d map[string]string) { d["env"] = "A\nA=namespace" }, "env", "listed twice"},
		{"mount without path", func(d map[string]string) { d["mounts"] = "warden-token" }, "mounts", "not VOLUME=PATH"},
		{"relative mount path", func(d map[string]string) { d["mounts"] = "warden-token=var/run" }, "mounts", "must be absolute"},
		{"no platform group", func(d map[string]string) { d["platformGroups"] = "" }, "platformGroups", "at least one group"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := base()
			tc.edit(d)
			_, err := ParseParams(&corev1.ConfigMap{Data: d})
			var pe *ParamsError
			if !errors.As(err, &pe) {
				t.Fatalf("want a *ParamsError, got %v", err)
			}
			if pe.Key != tc.key || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v (key %s), want key %s saying %q", err, pe.Key, tc.key, tc.want)
			}
		})
	}
}

// FuzzParseParams: any ConfigMap data either parses into parameters that
// render and parse back identically, or fails with a *ParamsError.
func FuzzParseParams(f *testing.F) {
	p := exampleParams(f)
	cm, err := p.ConfigMap()
	if err != nil {
		f.Fatal(err)
	}
	d := cm.Data
	f.Add(d["audience"], d["injectorNamespace"], d["images"], d["args"], d["env"], d["mounts"], d["breakGlassGroups"], d["platformGroups"])
	f.Add("a", "ns", "r@sha256:"+strings.Repeat("0", 64), "x\n y \n", "A=value:a=b:c\nB=field:x\nC", "v=/p", "", "g")
	f.Add("", "", "", "", "=", "=", "\n", "\r")
	f.Fuzz(func(t *testing.T, audience, ns, images, args, env, mounts, breakGlass, platform string) {
		in := &corev1.ConfigMap{Data: map[string]string{
			"audience": audience, "injectorNamespace": ns, "images": images, "args": args,
			"env": env, "mounts": mounts, "breakGlassGroups": breakGlass, "platformGroups": platform,
		}}
		got, err := ParseParams(in)
		if err != nil {
			var pe *ParamsError
			if !errors.As(err, &pe) {
				t.Fatalf("error is not a *ParamsError: %v", err)
			}
			return
		}
		out, err := got.ConfigMap()
		if err != nil {
			t.Fatalf("parsed parameters do not render: %v", err)
		}
		again, err := ParseParams(out)
		if err != nil {
			t.Fatalf("rendered parameters do not parse: %v", err)
		}
		if !reflect.DeepEqual(got, again) {
			t.Fatalf("round trip changed the parameters:\n got %+v\nwant %+v", again, got)
		}
	})
}
