package bedrocktest

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/warden-egress/warden/bedrock/sigv4"
)

// ECSConfig configures an ECSServer.
type ECSConfig struct {
	// IAM holds the keys (required); each caller sees its own account's
	// clusters, tasks and task definitions only.
	IAM     *IAM
	Region  string // default "us-east-1"
	MaxSkew time.Duration
	Logf    func(format string, args ...any)
}

// ECSTask is a running awsvpc task fixture.
type ECSTask struct {
	ARN               string // arn:aws:ecs:REGION:ACCOUNT:task/CLUSTER/ID
	ClusterARN        string
	TaskDefinitionARN string
	Group             string // "service:NAME" for a service's task; anything for RunTask
	LaunchType        string // default "FARGATE"
	StartedBy         string
	LastStatus        string // default "RUNNING"
	ENI               string // the task's network interface
	PrivateIP         string
	SubnetID          string
	// AttachmentID is the ENI attachment's id, the last part of the ENI's
	// description "arn:aws:ecs:REGION:ACCOUNT:attachment/ID".
	AttachmentID string
	// TaskRoleOverride is overrides.taskRoleArn (RunTask may override the
	// task definition's role).
	TaskRoleOverride string
}

// ECSTaskDefinition is a task definition fixture.
type ECSTaskDefinition struct {
	ARN         string // arn:aws:ecs:REGION:ACCOUNT:task-definition/FAMILY:REVISION
	TaskRoleARN string
}

// ECSCall is one request as the ECS emulator received it.
type ECSCall struct {
	Op          string
	AccessKeyID string
	Account     string
	SignatureOK bool
	Status      int
}

// ECSServer emulates the ECS API calls that name a task's workload from
// its network interface: ListClusters, ListTasks, DescribeTasks and
// DescribeTaskDefinition (JSON 1.1 protocol, X-Amz-Target
// AmazonEC2ContainerServiceV20141113.*, SigV4 for service "ecs"), with
// nextToken pagination and AWS's error shapes.
type ECSServer struct {
	URL string

	cfg ECSConfig
	hs  *http.Server

	mu       sync.Mutex
	tasks    map[string]ECSTask
	taskDefs map[string]ECSTaskDefinition
	calls    []ECSCall
	outage   int
}

// NewECSServer starts an ECS emulator on 127.0.0.1:0.
func NewECSServer(cfg ECSConfig) *ECSServer {
	if cfg.IAM == nil {
		panic("bedrocktest: ECSConfig.IAM is required")
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.MaxSkew == 0 {
		cfg.MaxSkew = sigv4.DefaultMaxSkew
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("bedrocktest: listen: %v", err))
	}
	s := &ECSServer{cfg: cfg, URL: "http://" + ln.Addr().String(), tasks: map[string]ECSTask{}, taskDefs: map[string]ECSTaskDefinition{}}
	s.hs = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 30 * time.Second}
	go s.hs.Serve(ln) //nolint:errcheck // ends with Close
	return s
}

// Close stops the server.
func (s *ECSServer) Close() { _ = s.hs.Close() }

// PutTask adds or replaces a task.
func (s *ECSServer) PutTask(t ECSTask) {
	s.mu.Lock()
	s.tasks[t.ARN] = t
	s.mu.Unlock()
}

// StopTask removes a task.
func (s *ECSServer) StopTask(arn string) {
	s.mu.Lock()
	delete(s.tasks, arn)
	s.mu.Unlock()
}

// PutTaskDefinition adds or replaces a task definition.
func (s *ECSServer) PutTaskDefinition(d ECSTaskDefinition) {
	s.mu.Lock()
	s.taskDefs[d.ARN] = d
	s.mu.Unlock()
}

// SetOutage makes every signed call answer status (0 ends it).
func (s *ECSServer) SetOutage(status int) {
	s.mu.Lock()
	s.outage = status
	s.mu.Unlock()
}

// Calls returns the calls received so far.
func (s *ECSServer) Calls() []ECSCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

const ecsTargetPrefix = "AmazonEC2ContainerServiceV20141113."

func (s *ECSServer) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	call := ECSCall{Op: strings.TrimPrefix(r.Header.Get("X-Amz-Target"), ecsTargetPrefix)}
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		call.Status = sw.status
		s.mu.Lock()
		s.calls = append(s.calls, call)
		s.mu.Unlock()
		if s.cfg.Logf != nil {
			s.cfg.Logf("bedrocktest ecs: %s by %s (%s) -> %d", call.Op, call.AccessKeyID, call.Account, call.Status)
		}
	}()
	if err != nil || r.Method != http.MethodPost {
		ecsError(sw, http.StatusBadRequest, "SerializationException", "")
		return
	}
	who, auth, verr := s.cfg.IAM.authenticate(r, body, nil, s.cfg.MaxSkew, "ecs", s.cfg.Region)
	if a := auth.claimed; a != nil {
		call.AccessKeyID = a.AccessKeyID
	}
	if verr != nil {
		switch {
		case errors.Is(verr, errExpiredToken):
			ecsError(sw, http.StatusBadRequest, "ExpiredTokenException", "The security token included in the request is expired")
		case errors.Is(verr, sigv4.ErrUnknownKey), errors.Is(verr, errBadToken):
			ecsError(sw, http.StatusBadRequest, "UnrecognizedClientException", "The security token included in the request is invalid.")
		case errors.Is(verr, sigv4.ErrMissingAuth):
			ecsError(sw, http.StatusBadRequest, "MissingAuthenticationTokenException", "Missing Authentication Token")
		default:
			ecsError(sw, http.StatusBadRequest, "InvalidSignatureException", "The request signature we calculated does not match the signature you provided.")
		}
		return
	}
	call.SignatureOK, call.AccessKeyID, call.Account = true, who.AccessKeyID, who.Account
	s.mu.Lock()
	outage := s.outage
	s.mu.Unlock()
	if outage > 0 {
		ecsError(sw, outage, "ServerException", "Service unavailable")
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
		ecsError(sw, http.StatusBadRequest, "SerializationException", "Content-Type "+ct)
		return
	}
	var in struct {
		Cluster        string   `json:"cluster"`
		Tasks          []string `json:"tasks"`
		TaskDefinition string   `json:"taskDefinition"`
		NextToken      string   `json:"nextToken"`
		MaxResults     int      `json:"maxResults"`
		DesiredStatus  string   `json:"desiredStatus"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		ecsError(sw, http.StatusBadRequest, "SerializationException", err.Error())
		return
	}
	switch call.Op {
	case "ListClusters":
		s.listClusters(sw, who, in.NextToken, in.MaxResults)
	case "ListTasks":
		s.listTasks(sw, who, in.Cluster, in.NextToken, in.MaxResults)
	case "DescribeTasks":
		s.describeTasks(sw, who, in.Cluster, in.Tasks)
	case "DescribeTaskDefinition":
		s.describeTaskDefinition(sw, who, in.TaskDefinition)
	default:
		ecsError(sw, http.StatusBadRequest, "UnknownOperationException", "")
	}
}

// clusterARN names cluster (an ARN or a name) in the caller's account.
func (s *ECSServer) clusterARN(who principal, cluster string) string {
	if cluster == "" {
		cluster = "default"
	}
	if strings.HasPrefix(cluster, "arn:") {
		return cluster
	}
	return "arn:aws:ecs:" + s.cfg.Region + ":" + who.Account + ":cluster/" + cluster
}

// page cuts list by nextToken and maxResults (1..100, default 100).
func page(list []string, token string, max int) (out []string, next string, err error) {
	if max <= 0 || max > 100 {
		max = 100
	}
	from := 0
	if token != "" {
		b, derr := base64.RawURLEncoding.DecodeString(token)
		n, aerr := strconv.Atoi(string(b))
		if derr != nil || aerr != nil || n < 0 || n > len(list) {
			return nil, "", errors.New("invalid nextToken")
		}
		from = n
	}
	to := min(len(list), from+max)
	if to < len(list) {
		next = base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(to)))
	}
	return list[from:to], next, nil
}

func (s *ECSServer) listClusters(w http.ResponseWriter, who principal, token string, max int) {
	s.mu.Lock()
	var all []string
	for _, t := range s.tasks {
		if who.visible(accountOfARN(t.ClusterARN)) && !slices.Contains(all, t.ClusterARN) {
			all = append(all, t.ClusterARN)
		}
	}
	s.mu.Unlock()
	sort.Strings(all)
	out, next, err := page(all, token, max)
	if err != nil {
		ecsError(w, http.StatusBadRequest, "InvalidParameterException", err.Error())
		return
	}
	writeJSON11(w, withNext(map[string]any{"clusterArns": nonNil(out)}, next))
}

func (s *ECSServer) listTasks(w http.ResponseWriter, who principal, cluster, token string, max int) {
	arn := s.clusterARN(who, cluster)
	if !who.visible(accountOfARN(arn)) {
		ecsError(w, http.StatusBadRequest, "ClusterNotFoundException", "Cluster not found.")
		return
	}
	s.mu.Lock()
	var all []string
	for _, t := range s.tasks {
		if t.ClusterARN == arn {
			all = append(all, t.ARN)
		}
	}
	s.mu.Unlock()
	sort.Strings(all)
	out, next, err := page(all, token, max)
	if err != nil {
		ecsError(w, http.StatusBadRequest, "InvalidParameterException", err.Error())
		return
	}
	writeJSON11(w, withNext(map[string]any{"taskArns": nonNil(out)}, next))
}

func withNext(m map[string]any, next string) map[string]any {
	if next != "" {
		m["nextToken"] = next
	}
	return m
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (s *ECSServer) describeTasks(w http.ResponseWriter, who principal, cluster string, ids []string) {
	if len(ids) == 0 || len(ids) > 100 {
		ecsError(w, http.StatusBadRequest, "InvalidParameterException", "Tasks cannot be empty and can have at most 100 items.")
		return
	}
	arn := s.clusterARN(who, cluster)
	tasks := []map[string]any{}
	failures := []map[string]any{}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		var found *ECSTask
		for _, t := range s.tasks {
			if t.ClusterARN == arn && who.visible(accountOfARN(t.ARN)) && (t.ARN == id || strings.HasSuffix(t.ARN, "/"+id)) {
				found = &t
				break
			}
		}
		if found == nil {
			failures = append(failures, map[string]any{"arn": id, "reason": "MISSING"})
			continue
		}
		t := *found
		launch, status := t.LaunchType, t.LastStatus
		if launch == "" {
			launch = "FARGATE"
		}
		if status == "" {
			status = "RUNNING"
		}
		task := map[string]any{
			"taskArn": t.ARN, "clusterArn": t.ClusterARN, "taskDefinitionArn": t.TaskDefinitionARN, "group": t.Group,
			"launchType": launch, "lastStatus": status, "desiredStatus": "RUNNING", "startedBy": t.StartedBy,
			"attachments": []map[string]any{{
				"id": t.AttachmentID, "type": "ElasticNetworkInterface", "status": "ATTACHED",
				"details": []map[string]string{
					{"name": "subnetId", "value": t.SubnetID},
					{"name": "networkInterfaceId", "value": t.ENI},
					{"name": "macAddress", "value": "0a:1b:2c:3d:4e:5f"},
					{"name": "privateIPv4Address", "value": t.PrivateIP},
				},
			}},
			"overrides": map[string]any{"containerOverrides": []any{}},
			"version":   3,
		}
		if t.TaskRoleOverride != "" {
			task["overrides"].(map[string]any)["taskRoleArn"] = t.TaskRoleOverride
		}
		tasks = append(tasks, task)
	}
	writeJSON11(w, map[string]any{"tasks": tasks, "failures": failures})
}

func (s *ECSServer) describeTaskDefinition(w http.ResponseWriter, who principal, ref string) {
	s.mu.Lock()
	var found *ECSTaskDefinition
	for _, d := range s.taskDefs {
		if who.visible(accountOfARN(d.ARN)) && (d.ARN == ref || strings.HasSuffix(d.ARN, "/"+ref)) {
			found = &d
			break
		}
	}
	s.mu.Unlock()
	if found == nil {
		ecsError(w, http.StatusBadRequest, "ClientException", "Unable to describe task definition.")
		return
	}
	famRev := found.ARN[strings.LastIndex(found.ARN, "/")+1:]
	fam, rev, _ := strings.Cut(famRev, ":")
	n, _ := strconv.Atoi(rev)
	td := map[string]any{"taskDefinitionArn": found.ARN, "family": fam, "revision": n, "status": "ACTIVE",
		"networkMode": "awsvpc", "containerDefinitions": []any{}}
	if found.TaskRoleARN != "" {
		td["taskRoleArn"] = found.TaskRoleARN
	}
	writeJSON11(w, map[string]any{"taskDefinition": td})
}

func writeJSON11(w http.ResponseWriter, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Requestid", newUUID())
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// ecsError writes the JSON 1.1 error shape.
func ecsError(w http.ResponseWriter, status int, code, msg string) {
	b, _ := json.Marshal(map[string]string{"__type": code, "message": msg})
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Requestid", newUUID())
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
