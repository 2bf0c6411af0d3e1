// Command peer-operator is the operator a user would otherwise write for a
// DirectoryService (kiln.dev/v1alpha1): a controller-runtime controller with
// kubebuilder's defaults (typed client, shared informer cache, Owns() on the
// child kinds, a workqueue with MaxConcurrentReconciles workers, an event
// recorder). bench/apply.ts runs it against the same control plane, in the same
// run, as kubectl and kiln, so kiln's apply mode is measured against the peer a
// user would pick rather than against a one-shot kubectl.
//
// What it mirrors of kiln's apply-mode reconciler (controller/apply/reconciler.ts)
// for one DirectoryService, object for object:
//   - the four children kiln renders (two Services, a PodDisruptionBudget, a
//     StatefulSet), byte for byte: bench/apply.ts writes kiln's render and
//     decoration for a placeholder name, namespace and uid to a template file,
//     and this fills it in per resource (the ApplySet part-of label, the
//     controller ownerReference, kiln's desired-digest annotation);
//   - server-side apply (force) of a child only when the cached copy lacks it,
//     is being deleted, or carries another desired digest (the hash-annotation
//     skip operators commonly use), with a UID precondition when it exists; a
//     child another owner controls is refused (Stalled ConflictingObject);
//   - the status kiln writes: Ready/Reconciling/Stalled, Synced and Available
//     conditions (lastTransitionTime moved only when the status flips),
//     observedGeneration, inventory, revision, replicas, readyReplicas,
//     selector and rollout progress, decided as kiln decides them (kstatus's
//     StatefulSet rollout; Ready only when the members run, which they never do
//     in the benchmark: no scheduler, no kubelet), written only when it differs
//     from the cached resource's;
//   - one Normal "Applied" Event when it applied something.
//
// Not mirrored: kiln's merge patch of ApplySet metadata onto the parent (its
// pruning finds members by label; an operator finds them by ownerReference
// through Owns()), pruning (the rendered set never changes here), spec
// validation and rendering from the spec (the template is the benchmark's one
// spec), and kiln's owned-fields digests (inventory entries carry no
// ownedFieldsDigest).
package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

const (
	fieldManager  = "peer-operator"
	partOf        = "applyset.kubernetes.io/part-of"
	desiredDigest = "kiln.dev/desired-digest"
	// Placeholders bench/apply.ts rendered the template with.
	phName, phNamespace, phUID, phID, phDigest = "zqxname", "zqxns", "zqxuid", "zqxapplysetid", "zqxdigest"

	defaultProgressDeadlineSeconds = 600
	maxRecheck                     = time.Hour
	conflictRecheck                = time.Minute
)

var groupVersion = schema.GroupVersion{Group: "kiln.dev", Version: "v1alpha1"}

// DirectoryService is the small Go type a kubebuilder project would generate,
// cut to what the reconciler reads: spec and status stay JSON maps (compared
// as kiln compares them, key by key).
type DirectoryService struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              map[string]interface{} `json:"spec,omitempty"`
	Status            map[string]interface{} `json:"status,omitempty"`
}

type DirectoryServiceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DirectoryService `json:"items"`
}

func (in *DirectoryService) DeepCopyObject() runtime.Object {
	out := &DirectoryService{TypeMeta: in.TypeMeta}
	in.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	if in.Spec != nil {
		out.Spec = runtime.DeepCopyJSON(in.Spec)
	}
	if in.Status != nil {
		out.Status = runtime.DeepCopyJSON(in.Status)
	}
	return out
}

func (in *DirectoryServiceList) DeepCopyObject() runtime.Object {
	out := &DirectoryServiceList{TypeMeta: in.TypeMeta}
	in.ListMeta.DeepCopyInto(&out.ListMeta)
	out.Items = make([]DirectoryService, len(in.Items))
	for i := range in.Items {
		out.Items[i] = *in.Items[i].DeepCopyObject().(*DirectoryService)
	}
	return out
}

// template is what bench/apply.ts writes: per child, kiln's JSON of the object
// with its ownership (the desired digest is the sha256 of exactly these bytes)
// and of the decorated object (with a placeholder for that digest).
type template struct {
	Children []struct {
		WithOwnership string `json:"withOwnership"`
		Decorated     string `json:"decorated"`
	} `json:"children"`
}

// digest is kiln's controller/apply/digest.ts: 128 bits of sha256, as 32 hex digits.
func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// applySetID is KEP-3659's parent id, as kiln's applySetId computes it.
func applySetID(name, namespace string) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s.%s.DirectoryService.%s", name, namespace, groupVersion.Group)))
	return "applyset-" + base64.RawURLEncoding.EncodeToString(sum[:]) + "-v1"
}

type desiredChild struct {
	obj    *unstructured.Unstructured
	digest string
}

// desired fills the template in for one DirectoryService: its children and kiln's revision of them.
func (t *template) desired(ds *DirectoryService) ([]desiredChild, string, error) {
	r := strings.NewReplacer(phName, ds.Name, phNamespace, ds.Namespace, phUID, string(ds.UID), phID, applySetID(ds.Name, ds.Namespace))
	out := make([]desiredChild, 0, len(t.Children))
	decorated := make([]string, 0, len(t.Children))
	for _, c := range t.Children {
		d := digest([]byte(r.Replace(c.WithOwnership)))
		text := strings.Replace(r.Replace(c.Decorated), phDigest, d, 1)
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON([]byte(text)); err != nil {
			return nil, "", fmt.Errorf("template child: %w", err)
		}
		out = append(out, desiredChild{obj: u, digest: d})
		decorated = append(decorated, text)
	}
	return out, "sha256:" + digest([]byte("["+strings.Join(decorated, ",")+"]")), nil
}

type reconciler struct {
	client.Client
	tmpl     *template
	recorder record.EventRecorder
}

// cachedChild is the typed, cached copy of a child (nil when the cache has none).
func (r *reconciler) cachedChild(ctx context.Context, u *unstructured.Unstructured) (client.Object, error) {
	var obj client.Object
	switch u.GetKind() {
	case "StatefulSet":
		obj = &appsv1.StatefulSet{}
	case "Service":
		obj = &corev1.Service{}
	case "PodDisruptionBudget":
		obj = &policyv1.PodDisruptionBudget{}
	default:
		return nil, fmt.Errorf("template renders a %s, which this operator does not watch", u.GetKind())
	}
	if err := r.Get(ctx, types.NamespacedName{Namespace: u.GetNamespace(), Name: u.GetName()}, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return obj, nil
}

// belongsTo is kiln's prune-policy belongsTo: controlled by this resource, or uncontrolled and labelled as its member.
func belongsTo(obj client.Object, ds *DirectoryService, id string) bool {
	if c := metav1.GetControllerOf(obj); c != nil {
		return c.UID == ds.UID
	}
	return obj.GetLabels()[partOf] == id
}

func condition(typ string, status bool, reason, message string, generation int64) map[string]interface{} {
	s := "False"
	if status {
		s = "True"
	}
	return map[string]interface{}{"type": typ, "status": s, "reason": reason, "message": message, "observedGeneration": generation}
}

// readyConditions is kube/status.ts readyConditions: kind is ready, stalled or reconciling.
func readyConditions(kind, reason, message string, generation int64) []interface{} {
	switch kind {
	case "ready":
		return []interface{}{condition("Ready", true, reason, message, generation), condition("Reconciling", false, reason, "", generation), condition("Stalled", false, reason, "", generation)}
	case "stalled":
		return []interface{}{condition("Ready", false, reason, message, generation), condition("Reconciling", false, reason, "", generation), condition("Stalled", true, reason, message, generation)}
	default:
		return []interface{}{condition("Ready", false, reason, message, generation), condition("Reconciling", true, reason, message, generation), condition("Stalled", false, reason, "", generation)}
	}
}

// rollout is kube/rollout.ts statefulSetRollout (kstatus's rules for a StatefulSet).
func rollout(sts *appsv1.StatefulSet, want int64, appliedNow bool) (complete bool, members string, ready int64) {
	var s appsv1.StatefulSetStatus
	if sts != nil {
		s = sts.Status
	}
	ready = int64(s.ReadyReplicas)
	parts := []string{fmt.Sprintf("%d/%d members ready", ready, want)}
	if s.CurrentRevision != s.UpdateRevision {
		parts = append(parts, fmt.Sprintf("%d/%d updated", s.UpdatedReplicas, want))
	}
	if int64(s.Replicas) > want {
		parts = append(parts, fmt.Sprintf("%d leaving", int64(s.Replicas)-want))
	}
	observed := sts != nil && !appliedNow && s.ObservedGeneration >= sts.Generation
	if !observed {
		parts = append(parts, "StatefulSet change not yet observed")
	}
	complete = observed && int64(s.Replicas) == want && ready == want && int64(s.UpdatedReplicas) == want && s.CurrentRevision == s.UpdateRevision
	return complete, strings.Join(parts, ", "), ready
}

func nowString(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

// progressDeadline is kube/rollout.ts progressDeadline: the clock restarts whenever the members change.
func progressDeadline(previous map[string]interface{}, members string, now time.Time, deadlineSeconds int64) (progress map[string]interface{}, exceeded bool, recheck time.Duration) {
	since := nowString(now)
	if prev, ok := previous["lastProgressTime"].(string); ok && previous["members"] == members {
		if _, err := time.Parse(time.RFC3339, prev); err == nil {
			since = prev
		}
	}
	sinceT, _ := time.Parse(time.RFC3339, since)
	remaining := sinceT.Add(time.Duration(deadlineSeconds) * time.Second).Sub(now)
	recheck = min(max(remaining, 0)+time.Second, maxRecheck)
	return map[string]interface{}{"members": members, "lastProgressTime": since}, remaining <= 0, recheck
}

func (r *reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ds := &DirectoryService{}
	if err := r.Get(ctx, req.NamespacedName, ds); err != nil {
		// Deleted: its children go by garbage collection.
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if ds.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}
	generation := ds.Generation
	id := applySetID(ds.Name, ds.Namespace)
	desired, revision, err := r.tmpl.desired(ds)
	if err != nil {
		return ctrl.Result{}, err
	}

	var toApply []*unstructured.Unstructured
	var conflicts []string
	var sts *appsv1.StatefulSet
	for _, d := range desired {
		cur, err := r.cachedChild(ctx, d.obj)
		if err != nil {
			return ctrl.Result{}, err
		}
		if s, ok := cur.(*appsv1.StatefulSet); ok {
			sts = s
		}
		if cur == nil {
			toApply = append(toApply, d.obj)
			continue
		}
		if !belongsTo(cur, ds, id) {
			conflicts = append(conflicts, fmt.Sprintf("%s %s/%s exists and is not this resource's", d.obj.GetKind(), cur.GetNamespace(), cur.GetName()))
			continue
		}
		if cur.GetDeletionTimestamp() == nil && cur.GetAnnotations()[desiredDigest] == d.digest {
			continue
		}
		// The server applies it only to the object with this UID (kiln's withUid).
		d.obj.SetUID(cur.GetUID())
		toApply = append(toApply, d.obj)
	}
	if len(conflicts) > 0 {
		sort.Strings(conflicts)
		message := "refusing to take over objects kiln does not own: " + strings.Join(conflicts, "; ") + "; delete or rename them, or give this resource another name"
		conds := append(readyConditions("stalled", "ConflictingObject", message, generation), condition("Synced", false, "ConflictingObject", message, generation))
		written, err := r.writeStatus(ctx, ds, map[string]interface{}{"conditions": conds})
		if err != nil {
			return ctrl.Result{}, err
		}
		if written {
			r.recorder.Event(ds, corev1.EventTypeWarning, "ConflictingObject", message)
		}
		return ctrl.Result{RequeueAfter: conflictRecheck}, nil
	}

	appliedSts := false
	for _, u := range toApply {
		if err := r.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(fieldManager), client.ForceOwnership); err != nil {
			return ctrl.Result{}, err // the workqueue retries with backoff
		}
		if u.GetKind() == "StatefulSet" {
			appliedSts = true
		}
	}
	if len(toApply) > 0 {
		r.recorder.Event(ds, corev1.EventTypeNormal, "Applied", fmt.Sprintf("applied %d of %d objects", len(toApply), len(desired)))
	}

	// Health, as kiln's rolloutHealth decides it for a kind whose members are a StatefulSet's.
	var stsDesired *unstructured.Unstructured
	for _, d := range desired {
		if d.obj.GetKind() == "StatefulSet" {
			stsDesired = d.obj
		}
	}
	want, found, _ := unstructured.NestedInt64(stsDesired.Object, "spec", "replicas")
	if !found {
		want = 1
	}
	complete, members, ready := rollout(sts, want, appliedSts)
	matchLabels, _, _ := unstructured.NestedStringMap(stsDesired.Object, "spec", "selector", "matchLabels")
	keys := make([]string, 0, len(matchLabels))
	for k := range matchLabels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	selector := make([]string, len(keys))
	for i, k := range keys {
		selector[i] = k + "=" + matchLabels[k]
	}
	var replicas int64
	if sts != nil {
		replicas = int64(sts.Status.Replicas)
	}
	available := condition("Available", ready >= want, "MembersNotReady", fmt.Sprintf("%d/%d members ready", ready, want), generation)
	if ready >= want {
		available["reason"] = "MembersReady"
	}
	outcome, reason, message := "ready", "RolloutComplete", members
	var progress map[string]interface{}
	var requeue time.Duration
	if !complete {
		deadline := int64(defaultProgressDeadlineSeconds)
		switch v := ds.Spec["progressDeadlineSeconds"].(type) {
		case int64:
			deadline = v
		case float64:
			deadline = int64(v)
		}
		previous, _ := ds.Status["rollout"].(map[string]interface{})
		var exceeded bool
		progress, exceeded, requeue = progressDeadline(previous, members, time.Now(), deadline)
		if exceeded {
			outcome, reason, message, requeue = "stalled", "ProgressDeadlineExceeded", fmt.Sprintf("no progress for %ds: %s", deadline, members), 0
		} else {
			outcome, reason = "reconciling", "Progressing"
		}
	}
	inventory := make([]interface{}, len(desired))
	for i, d := range desired {
		inventory[i] = map[string]interface{}{"apiVersion": d.obj.GetAPIVersion(), "kind": d.obj.GetKind(), "namespace": d.obj.GetNamespace(), "name": d.obj.GetName()}
	}
	conds := append(readyConditions(outcome, reason, message, generation), condition("Synced", true, "Applied", fmt.Sprintf("%d objects applied and in sync", len(desired)), generation), available)
	status := map[string]interface{}{
		"conditions":    conds,
		"inventory":     inventory,
		"revision":      revision,
		"replicas":      replicas,
		"readyReplicas": ready,
		"selector":      strings.Join(selector, ","),
	}
	if progress != nil {
		status["rollout"] = progress
	}
	wasStalled := false
	if live, ok := ds.Status["conditions"].([]interface{}); ok {
		for _, c := range live {
			if m, ok := c.(map[string]interface{}); ok && m["type"] == "Stalled" && m["status"] == "True" && m["reason"] == reason {
				wasStalled = true
			}
		}
	}
	written, err := r.writeStatus(ctx, ds, status)
	if err != nil {
		return ctrl.Result{}, err
	}
	if outcome == "stalled" && !wasStalled && written {
		r.recorder.Event(ds, corev1.EventTypeWarning, reason, message)
	}
	return ctrl.Result{RequeueAfter: requeue}, nil
}

// writeStatus is kube/status.ts StatusWriter.write: observedGeneration and the carried-over
// lastTransitionTimes added, server-side applied to the status subresource only when the
// cached resource does not already say it all.
func (r *reconciler) writeStatus(ctx context.Context, ds *DirectoryService, next map[string]interface{}) (bool, error) {
	next["observedGeneration"] = ds.Generation
	live, err := viaJSON(ds.Status)
	if err != nil {
		return false, err
	}
	liveConds, _ := live["conditions"].([]interface{})
	liveByType := map[string]map[string]interface{}{}
	for _, c := range liveConds {
		if m, ok := c.(map[string]interface{}); ok {
			if t, ok := m["type"].(string); ok {
				liveByType[t] = m
			}
		}
	}
	now := nowString(time.Now())
	for _, c := range next["conditions"].([]interface{}) {
		m := c.(map[string]interface{})
		m["lastTransitionTime"] = now
		if old := liveByType[m["type"].(string)]; old != nil && old["status"] == m["status"] {
			if t, ok := old["lastTransitionTime"].(string); ok && t != "" {
				m["lastTransitionTime"] = t
			}
		}
	}
	upToDate, err := statusUpToDate(live, next, liveByType)
	if err != nil || upToDate {
		return false, err
	}
	u := &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": groupVersion.String(),
		"kind":       "DirectoryService",
		"metadata":   map[string]interface{}{"name": ds.Name, "namespace": ds.Namespace},
		"status":     next,
	}}
	return true, r.Status().Patch(ctx, u, client.Apply, client.FieldOwner(fieldManager), client.ForceOwnership)
}

// viaJSON is m through encoding/json, so numbers compare alike: the cache decodes integers as
// int64 (apimachinery's serializer), what this reconciler builds holds int64 and strings, and
// encoding/json gives float64 for both.
func viaJSON(m map[string]interface{}) (map[string]interface{}, error) {
	if m == nil {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	var out map[string]interface{}
	return out, json.Unmarshal(b, &out)
}

// statusUpToDate is kube/status.ts statusUpToDate: conditions compared by type (status, reason,
// message, observedGeneration), every other key of `next` as JSON.
func statusUpToDate(live, next map[string]interface{}, liveByType map[string]map[string]interface{}) (bool, error) {
	if live == nil {
		return false, nil
	}
	want, err := viaJSON(next)
	if err != nil {
		return false, err
	}
	for k, v := range want {
		if k != "conditions" {
			if !reflect.DeepEqual(live[k], v) {
				return false, nil
			}
			continue
		}
		for _, c := range v.([]interface{}) {
			m := c.(map[string]interface{})
			old := liveByType[m["type"].(string)]
			if old == nil {
				return false, nil
			}
			for _, f := range []string{"status", "reason", "message", "observedGeneration"} {
				if !reflect.DeepEqual(old[f], m[f]) {
					return false, nil
				}
			}
		}
	}
	return true, nil
}

func main() {
	namespace := flag.String("namespace", "", "watch DirectoryServices and their children in this namespace only (empty: all)")
	templateFile := flag.String("template", "", "children template written by bench/apply.ts (required)")
	qps := flag.Float64("qps", 0, "client QPS (0: controller-runtime's default: no client-side rate limit)")
	burst := flag.Int("burst", 0, "client burst")
	concurrency := flag.Int("concurrency", 1, "MaxConcurrentReconciles")
	probeAddr := flag.String("health-probe-bind-address", ":8081", "/healthz and /readyz")
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.Level(zapcore.WarnLevel)))
	log := ctrl.Log.WithName("peer-operator")
	if err := run(*namespace, *templateFile, *qps, *burst, *concurrency, *probeAddr); err != nil {
		log.Error(err, "exiting")
		os.Exit(1)
	}
}

func run(namespace, templateFile string, qps float64, burst, concurrency int, probeAddr string) error {
	if templateFile == "" {
		return errors.New("--template is required")
	}
	raw, err := os.ReadFile(templateFile)
	if err != nil {
		return err
	}
	tmpl := &template{}
	if err := json.Unmarshal(raw, tmpl); err != nil {
		return fmt.Errorf("%s: %w", templateFile, err)
	}
	hasSts := false
	for _, c := range tmpl.Children {
		hasSts = hasSts || strings.Contains(c.Decorated, `"kind":"StatefulSet"`)
	}
	if len(tmpl.Children) == 0 || !hasSts {
		return fmt.Errorf("%s: no children, or no StatefulSet among them", templateFile)
	}

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	scheme.AddKnownTypes(groupVersion, &DirectoryService{}, &DirectoryServiceList{})
	metav1.AddToGroupVersion(scheme, groupVersion)

	cfg, err := ctrl.GetConfig()
	if err != nil {
		return err
	}
	if qps != 0 {
		cfg.QPS, cfg.Burst = float32(qps), burst
	}
	cacheOpts := cache.Options{}
	if namespace != "" {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{namespace: {}}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Cache:                  cacheOpts,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: probeAddr,
	})
	if err != nil {
		return err
	}
	r := &reconciler{Client: mgr.GetClient(), tmpl: tmpl, recorder: mgr.GetEventRecorderFor(fieldManager)}
	err = ctrl.NewControllerManagedBy(mgr).
		For(&DirectoryService{}).
		Owns(&appsv1.StatefulSet{}).
		Owns(&corev1.Service{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: concurrency}).
		Complete(r)
	if err != nil {
		return err
	}
	// Ready once every informer has listed, as kiln's /readyz.
	watched := []client.Object{&DirectoryService{}, &appsv1.StatefulSet{}, &corev1.Service{}, &policyv1.PodDisruptionBudget{}}
	if err := mgr.AddReadyzCheck("informers", func(req *http.Request) error {
		for _, obj := range watched {
			inf, err := mgr.GetCache().GetInformer(req.Context(), obj, cache.BlockUntilSynced(false))
			if err != nil {
				return err
			}
			if !inf.HasSynced() {
				return fmt.Errorf("%T not synced", obj)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	return mgr.Start(ctrl.SetupSignalHandler())
}
