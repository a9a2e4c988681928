package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// athenaTable is the Glue/Athena table over the S3 sink's objects.
const athenaTable = "../deploy/athena/warden_audit.sql"

// The generated column block sits between these lines of athenaTable.
const (
	athenaBegin = "  -- columns: generated from audit.Record by `go test ./audit -run TestAthenaColumns -update`; do not edit"
	athenaEnd   = "  -- end of generated columns"
)

// fillValue sets every exported field reachable from v to a non-zero value
// by reflection, so that a record filled this way writes every JSON field
// it can: strings "x", numbers with a fractional part where the encoder
// writes one (durations as 1.234567 ms), one element per slice and map.
func fillValue(v reflect.Value) {
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(true)
	case reflect.String:
		v.SetString("x")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1234567)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(7)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(0.5)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fillValue(v.Field(i))
			}
		}
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fillValue(s.Index(0))
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fillValue(k)
		fillValue(e)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Pointer:
		if v.Type().Elem().Kind() == reflect.Struct { // optional groups such as Record.Agent
			p := reflect.New(v.Type().Elem())
			fillValue(p.Elem())
			v.Set(p)
		}
	case reflect.Interface, reflect.Func, reflect.Chan:
		// none exported in Record; a new one fails TestRecordFieldsReachJSON
	}
}

// leafFields lists the exported leaf fields of t (structs other than
// time.Time opened), each as its index path.
func leafFields(t reflect.Type, prefix []int, name string, out *[]leaf) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		idx := append(slices.Clone(prefix), i)
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Time{}) {
			leafFields(f.Type, idx, name+f.Name+".", out)
			continue
		}
		if f.Type.Kind() == reflect.Pointer && f.Type.Elem().Kind() == reflect.Struct {
			leafFields(f.Type.Elem(), idx, name+f.Name+".", out)
			continue
		}
		*out = append(*out, leaf{name + f.Name, idx})
	}
}

type leaf struct {
	name  string
	index []int
}

// fullRecordLine is a sealed record line with every field set.
func fullRecordLine() []byte {
	var r Record
	fillValue(reflect.ValueOf(&r).Elem())
	return sealForTest(r.AppendJSON(nil), false)
}

// sealForTest adds the chain trailer (and a checkpoint's signature) as
// the spool does.
func sealForTest(body []byte, checkpoint bool) []byte {
	line := appendTrailer(bytes.TrimSuffix(body, []byte("}")), 9, [32]byte{1}, [32]byte{2})
	if checkpoint {
		line = append(line, `,"sig":"c2ln"`...)
	}
	return append(line, '}')
}

// TestRecordFieldsReachJSON: every exported field of Record (and of the
// structs in it) changes the JSON line when cleared, so the columns
// derived from a full record's line cover every field. A field the
// encoder ignores fails here, named.
func TestRecordFieldsReachJSON(t *testing.T) {
	full := fullRecordLine()
	var leaves []leaf
	leafFields(reflect.TypeOf(Record{}), nil, "", &leaves)
	for _, l := range leaves {
		var r Record
		fillValue(reflect.ValueOf(&r).Elem())
		f := reflect.ValueOf(&r).Elem().FieldByIndex(l.index)
		f.Set(reflect.Zero(f.Type()))
		if bytes.Equal(sealForTest(r.AppendJSON(nil), false), full) {
			t.Errorf("Record.%s: clearing it does not change the JSON line; the encoder (AppendJSON) does not write it", l.name)
		}
	}
}

// athenaType is the Athena (Hive DDL) type of a JSON value as the record
// encoder writes it.
func athenaType(raw json.RawMessage) (string, error) {
	var v any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return "", err
	}
	switch x := v.(type) {
	case string:
		return "string", nil
	case bool:
		return "boolean", nil
	case json.Number:
		if strings.ContainsAny(string(x), ".eE") {
			return "double", nil
		}
		return "bigint", nil
	case map[string]any:
		return "map<string,string>", nil
	case []any:
		var elems []json.RawMessage
		if err := json.Unmarshal(raw, &elems); err != nil || len(elems) == 0 {
			return "", fmt.Errorf("array %s", raw)
		}
		if elems[0][0] != '{' {
			et, err := athenaType(elems[0])
			return "array<" + et + ">", err
		}
		fields, err := orderedFields(elems[0])
		if err != nil {
			return "", err
		}
		var parts []string
		for _, f := range fields {
			ft, err := athenaType(f.raw)
			if err != nil {
				return "", err
			}
			parts = append(parts, f.name+":"+ft)
		}
		return "array<struct<" + strings.Join(parts, ",") + ">>", nil
	}
	return "", fmt.Errorf("no Athena type for %s", raw)
}

type jsonField struct {
	name string
	raw  json.RawMessage
}

// orderedFields lists an object's fields in the order they appear.
func orderedFields(obj []byte) ([]jsonField, error) {
	d := json.NewDecoder(bytes.NewReader(obj))
	if _, err := d.Token(); err != nil {
		return nil, err
	}
	var out []jsonField
	for d.More() {
		k, err := d.Token()
		if err != nil {
			return nil, err
		}
		var raw json.RawMessage
		if err := d.Decode(&raw); err != nil {
			return nil, err
		}
		out = append(out, jsonField{k.(string), raw})
	}
	return out, nil
}

// athenaColumns derives the table's columns: every field of a full call
// record's sealed line (Record by reflection, through AppendJSON and the
// chain trailer), then the fields only checkpoint lines have, in line
// order. The map column for tags is map<string,string>.
func athenaColumns(t *testing.T) []string {
	t.Helper()
	var cols []string
	seen := map[string]string{}
	for _, line := range [][]byte{
		fullRecordLine(),
		sealForTest(checkpointBody(nil, "x", 9, time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC), "x", "x", true), true),
	} {
		fields, err := orderedFields(line)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		for _, f := range fields {
			typ, err := athenaType(f.raw)
			if err != nil {
				t.Fatalf("field %s: %v", f.name, err)
			}
			if prev, ok := seen[f.name]; ok {
				if prev != typ {
					t.Fatalf("field %s is %s in one line kind and %s in another", f.name, prev, typ)
				}
				continue
			}
			seen[f.name] = typ
			cols = append(cols, fmt.Sprintf("`%s` %s", f.name, typ))
		}
	}
	return cols
}

// TestAthenaColumns: the Athena table's columns are exactly the record's
// JSON fields with their types (derived from audit.Record), so the table
// cannot drift from what the S3 sink writes. -update rewrites the
// generated block of deploy/athena/warden_audit.sql.
func TestAthenaColumns(t *testing.T) {
	want := athenaColumns(t)
	for i := range want[:len(want)-1] {
		want[i] += ","
	}
	src, err := os.ReadFile(athenaTable)
	if err != nil {
		t.Fatal(err)
	}
	text := string(src)
	b, e := strings.Index(text, athenaBegin+"\n"), strings.Index(text, athenaEnd+"\n")
	if b < 0 || e < b {
		t.Fatalf("%s: no generated column block (%q ... %q)", athenaTable, athenaBegin, athenaEnd)
	}
	block := text[b+len(athenaBegin)+1 : e]
	var got []string
	for _, l := range strings.Split(strings.TrimSuffix(block, "\n"), "\n") {
		got = append(got, strings.TrimSpace(l))
	}
	if *updateReport {
		var nb strings.Builder
		for _, c := range want {
			nb.WriteString("  " + c + "\n")
		}
		text = text[:b+len(athenaBegin)+1] + nb.String() + text[e:]
		if err := os.WriteFile(athenaTable, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		got = want
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s: columns differ from the record's JSON fields (go test ./audit -run TestAthenaColumns -update):\ngot\n\t%s\nwant\n\t%s",
			athenaTable, strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
	// Every field the report reads (recordJSON, decode.go's mirror) is a
	// column too.
	names := map[string]bool{}
	for _, c := range want {
		names[strings.Trim(strings.Fields(c)[0], "`")] = true
	}
	rt := reflect.TypeOf(recordJSON{})
	var missing []string
	for i := 0; i < rt.NumField(); i++ {
		if n := strings.Split(rt.Field(i).Tag.Get("json"), ",")[0]; n != "" && !names[n] {
			missing = append(missing, n)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("fields the report decodes but the table lacks: %v", missing)
	}
}

// TestAthenaViewsUseTableColumns: every column views.sql reads from the
// table (as r.NAME or a.NAME) is one of the table's columns, so a renamed
// record field breaks this test, not a query in production.
func TestAthenaViewsUseTableColumns(t *testing.T) {
	src, err := os.ReadFile("../deploy/athena/views.sql")
	if err != nil {
		t.Fatal(err)
	}
	cols := map[string]bool{"dt": true, "hour": true, "copy": true}
	for _, c := range athenaColumns(t) {
		cols[strings.Trim(strings.Fields(c)[0], "`")] = true
	}
	refs := regexp.MustCompile(`\b[ra]\.("?)([a-z_0-9]+)("?)`).FindAllStringSubmatch(string(src), -1)
	if len(refs) < 10 {
		t.Fatalf("views.sql: only %d column references found", len(refs))
	}
	for _, m := range refs {
		if !cols[m[2]] {
			t.Errorf("views.sql reads %s, which is not a column of warden_audit", m[0])
		}
	}
	for _, v := range []string{"CREATE OR REPLACE VIEW warden_audit_calls", "FROM warden_audit a", "WHERE a.kind IS NULL"} {
		if !strings.Contains(string(src), v) {
			t.Errorf("views.sql lacks %q", v)
		}
	}
}

// TestAthenaLayout: the table's partition projection names the keys the
// S3 sink writes (ObjectKey): the storage template with the projected
// dt and hour is the directory of a key, and the date format and hour
// digits are the key's.
func TestAthenaLayout(t *testing.T) {
	src, err := os.ReadFile(athenaTable)
	if err != nil {
		t.Fatal(err)
	}
	props := map[string]string{}
	for _, m := range regexp.MustCompile(`'([a-z.A-Z]+)' = '([^']*)'`).FindAllStringSubmatch(string(src), -1) {
		props[m[1]] = m[2]
	}
	for k, v := range map[string]string{
		"projection.enabled": "true", "projection.dt.type": "date", "projection.dt.format": "yyyy-MM-dd",
		"projection.hour.type": "integer", "projection.hour.range": "0,23", "projection.hour.digits": "2",
	} {
		if props[k] != v {
			t.Errorf("%s: %s = %q, want %q", athenaTable, k, props[k], v)
		}
	}
	tmpl, loc := props["storage.location.template"], regexp.MustCompile(`LOCATION '([^']*)'`).FindStringSubmatch(string(src))
	if len(loc) < 2 || !strings.HasPrefix(tmpl, loc[1]) {
		t.Fatalf("storage.location.template %q is not under LOCATION %v", tmpl, loc)
	}
	prefix := strings.TrimPrefix(loc[1], "s3://BUCKET/")
	at := time.Date(2026, 12, 1, 8, 59, 0, 0, time.UTC)
	key := ObjectKey(prefix, "warden-a", at.Truncate(time.Hour), Entry{ID: "r1", Time: at})
	dir := strings.NewReplacer("${dt}", "2026-12-01", "${hour}", "08").Replace(strings.TrimPrefix(tmpl, "s3://BUCKET/"))
	if !strings.HasPrefix(key, dir) || strings.Contains(key[len(dir):], "/") {
		t.Errorf("the sink writes %s, not in the table's partition directory %s", key, dir)
	}
}
