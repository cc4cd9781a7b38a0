#!/usr/bin/env bash
# The test cluster: a real Kubernetes control plane and a real Argo CD on
# this machine, with no images and no Docker, from the Go module proxy and
# Debian's packages.
#
#   ci/cluster.sh build   build what is missing (versions pinned
#                         in ci/cluster/*/go.mod and below)
#   ci/cluster.sh up      build, then start everything; writes .testenv/kubeconfig
#   ci/cluster.sh down    stop it (and remove its state)
#
# What runs, all on 127.0.0.1:
#   etcd (Debian)                                   :2379
#   kube-apiserver, -controller-manager, -scheduler  :6443 (k8s v1.34.2)
#   kwok (simulated node kwok-node-0: pods become Ready without running)
#   redis (Debian), argocd-repo-server, argocd-application-controller,
#   argocd-applicationset-controller (argo-cd v3.2.11), kustomize v5.8.1
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
state="$repo/.testenv/cluster"
KV=v1.34.2
KWOKV=v0.8.0
KUSTV=v5.8.1
ARGOV=v3.2.11
# The binaries take long to build cold; like Go's build cache, they are
# kept per version outside the work tree (SHIPIT_CLUSTER_BIN overrides).
sum=$(cat "$repo/ci/cluster/k8s/go.sum" "$repo/ci/cluster/argocd/go.sum" | sha256sum | cut -c1-12)
bin=${SHIPIT_CLUSTER_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/shipit/cluster-$KV-$ARGOV-$KWOKV-$KUSTV-$sum}
export GOTOOLCHAIN=local
export PATH="$bin:$PATH"

log() { printf 'cluster: %s\n' "$*" >&2; }

ready() { # name seconds command...: wait until command succeeds
	local name=$1 secs=$2
	shift 2
	for _ in $(seq 1 $((secs * 5))); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.2
	done
	log "$name did not come up in ${secs}s; the end of its log:"
	tail -n 40 "$state/logs/$name.log" >&2 2>/dev/null || true
	return 1
}

run() { # name command...: start in the background, logging, remembering the pid
	local name=$1
	shift
	nohup "$@" >"$state/logs/$name.log" 2>&1 &
	echo $! >"$state/run/$name.pid"
}

packages() {
	local need=()
	command -v etcd >/dev/null || need+=(etcd-server)
	command -v redis-server >/dev/null || need+=(redis-server)
	command -v openssl >/dev/null || need+=(openssl)
	command -v kubectl >/dev/null || need+=(kubernetes-client)
	if [ ${#need[@]} -gt 0 ]; then
		log "installing ${need[*]} from Debian"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	fi
	# The packages start services of their own; ours run on our terms.
	for s in etcd redis-server; do
		if command -v systemctl >/dev/null && systemctl is-active --quiet "$s" 2>/dev/null; then systemctl stop "$s" || true; fi
		service "$s" stop >/dev/null 2>&1 || true
	done
}

build() {
	mkdir -p "$bin"
	local ld="-s -w -X k8s.io/component-base/version.gitVersion=$KV -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=34 -X k8s.io/component-base/version.gitTreeState=clean"
	for c in kube-apiserver kube-controller-manager kube-scheduler; do
		if [ ! -x "$bin/$c" ]; then
			log "building $c $KV (minutes, cold)"
			(cd "$repo/ci/cluster/k8s" && go build -trimpath -ldflags "$ld" -o "$bin/$c" "k8s.io/kubernetes/cmd/$c")
		fi
	done
	if [ ! -x "$bin/kwok" ]; then
		log "building kwok $KWOKV"
		GOBIN="$bin" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOKV"
	fi
	if [ ! -x "$bin/kustomize" ]; then
		log "building kustomize $KUSTV"
		GOBIN="$bin" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kustomize/kustomize/v5@$KUSTV"
	fi
	if [ ! -x "$bin/argocd" ]; then
		log "building argocd $ARGOV (minutes, cold)"
		(cd "$repo/ci/cluster/argocd" && go build -trimpath -ldflags "-s -w -X github.com/argoproj/argo-cd/v3/common.version=${ARGOV#v}" -o "$bin/argocd" github.com/argoproj/argo-cd/v3/cmd)
	fi
}

pki() {
	local p="$state/pki"
	[ -f "$p/admin.kubeconfig" ] && return 0
	mkdir -p "$p"
	(
		cd "$p"
		openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -subj "/CN=shipit-test-cluster-ca" -days 30 -out ca.crt 2>/dev/null
		sign() { # name subject extensions
			openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
			printf '%s\n' "$3" >"$1.ext"
			openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
		}
		sign apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,DNS:kubernetes.default.svc,IP:127.0.0.1,IP:10.96.0.1"
		sign admin "/O=system:masters/CN=shipit-test-admin" "basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
		openssl genrsa -out sa.key 2048 2>/dev/null
		openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
		export KUBECONFIG="$p/admin.kubeconfig"
		kubectl config set-cluster test --server=https://127.0.0.1:6443 --certificate-authority=ca.crt --embed-certs >/dev/null
		kubectl config set-credentials admin --client-certificate=admin.crt --client-key=admin.key --embed-certs >/dev/null
		kubectl config set-context test --cluster=test --user=admin >/dev/null
		kubectl config use-context test >/dev/null
	)
}

up() {
	if [ "$(id -u)" != 0 ]; then log "run as root"; exit 1; fi
	packages
	build
	if [ -f "$state/run/kube-apiserver.pid" ] && kill -0 "$(cat "$state/run/kube-apiserver.pid")" 2>/dev/null; then
		log "already up: export KUBECONFIG=$repo/.testenv/kubeconfig"
		return 0
	fi
	mkdir -p "$state"/{logs,run,etcd,argocd/tls,argocd/ssh,argocd/gpg/keys,argocd/gpg/source,argocd/tmp}
	pki
	local p="$state/pki"
	cp "$p/admin.kubeconfig" "$repo/.testenv/kubeconfig"
	export KUBECONFIG="$repo/.testenv/kubeconfig"
	local t0=$SECONDS

	run etcd etcd --name test --data-dir "$state/etcd" \
		--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
		--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster test=http://127.0.0.1:2380
	ready etcd 30 sh -c 'curl -s http://127.0.0.1:2379/health | grep -q true'

	run kube-apiserver kube-apiserver --etcd-servers=http://127.0.0.1:2379 \
		--bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port=6443 \
		--tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" --client-ca-file="$p/ca.crt" \
		--service-account-issuer=https://kubernetes.default.svc.cluster.local \
		--service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
		--service-cluster-ip-range=10.96.0.0/16 --authorization-mode=RBAC \
		--endpoint-reconciler-type=none --feature-gates=WatchList=false
	ready kube-apiserver 120 sh -c 'kubectl get --raw /readyz | grep -q ok'
	run kube-controller-manager kube-controller-manager --kubeconfig="$KUBECONFIG" \
		--authentication-kubeconfig="$KUBECONFIG" --authorization-kubeconfig="$KUBECONFIG" \
		--bind-address=127.0.0.1 --secure-port=10257 --leader-elect=false \
		--service-account-private-key-file="$p/sa.key" --root-ca-file="$p/ca.crt" \
		--use-service-account-credentials=false --controllers='*,-nodeipam,-cloud-node-lifecycle'
	run kube-scheduler kube-scheduler --kubeconfig="$KUBECONFIG" \
		--authentication-kubeconfig="$KUBECONFIG" --authorization-kubeconfig="$KUBECONFIG" \
		--bind-address=127.0.0.1 --secure-port=10259 --leader-elect=false
	ready kube-controller-manager 60 sh -c 'curl -sk https://127.0.0.1:10257/healthz | grep -q ok'
	ready kube-scheduler 60 sh -c 'curl -sk https://127.0.0.1:10259/healthz | grep -q ok'

	# kwok plays the node: its stages (from its own module) make pods
	# Running and Ready, unless a pod asks otherwise (see the tests).
	local km
	km=$(go mod download -json "sigs.k8s.io/kwok@$KWOKV" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
	# One change to kwok's own stages: a pod whose image tag begins with
	# never-ready- never becomes ready, which is how the tests make a
	# release that cannot become healthy.
	for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
		pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
		echo '---'
		if [ "$f" = pod/fast/pod-ready.yaml ]; then
			awk '!done && /key: .\.status\.phase./ {
				print "    - key: '"'"'.spec.containers.[] | .image | contains(\":never-ready-\")'"'"'"
				print "      operator: '"'"'NotIn'"'"'"
				print "      values: ['"'"'true'"'"']"
				done = 1
			} { print }' "$km/kustomize/stage/$f"
		else
			cat "$km/kustomize/stage/$f"
		fi
	done >"$state/kwok.yaml"
	# No ingress controller runs here: kwok plays one, giving each Ingress
	# an address (Argo CD counts an Ingress Healthy once it has one).
	cat >>"$state/kwok.yaml" <<'EOF'
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: ingress-address
spec:
  resourceRef:
    apiGroup: networking.k8s.io/v1
    kind: Ingress
  selector:
    matchExpressions:
      - key: '.status.loadBalancer.ingress'
        operator: 'DoesNotExist'
  next:
    statusTemplate: |
      loadBalancer:
        ingress:
          - ip: 127.0.0.1
EOF
	run kwok kwok --config="$state/kwok.yaml" --kubeconfig="$KUBECONFIG" --manage-all-nodes=true \
		--cidr=10.244.0.1/16 --node-ip=10.0.0.1 --server-address=127.0.0.1:10247
	kubectl apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-0
  annotations: {kwok.x-k8s.io/node: fake}
  labels: {kubernetes.io/arch: amd64, kubernetes.io/hostname: kwok-node-0, kubernetes.io/os: linux, type: kwok}
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "250"}
  capacity: {cpu: "32", memory: 256Gi, pods: "250"}
EOF
	ready kwok 60 sh -c "kubectl get node kwok-node-0 -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -q True"

	run redis redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no
	ready redis 30 sh -c 'redis-cli -h 127.0.0.1 ping | grep -q PONG'
	local am
	am=$(go mod download -json "github.com/argoproj/argo-cd/v3@$ARGOV" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
	kubectl create namespace argocd >/dev/null
	kubectl apply --server-side -f "$am/manifests/crds/application-crd.yaml" -f "$am/manifests/crds/appproject-crd.yaml" \
		-f "$am/manifests/crds/applicationset-crd.yaml" >/dev/null
	kubectl -n argocd apply -k "$am/manifests/base/config" >/dev/null
	kubectl wait --for condition=established --timeout=60s crd/applications.argoproj.io crd/appprojects.argoproj.io crd/applicationsets.argoproj.io >/dev/null
	kubectl apply -f - >/dev/null <<'EOF'
apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata: {name: default, namespace: argocd}
spec:
  sourceRepos: ['*']
  destinations: [{namespace: '*', server: '*'}]
  clusterResourceWhitelist: [{group: '*', kind: '*'}]
EOF
	local a="$state/argocd"
	local env=(ARGOCD_FAKE_IN_CLUSTER=true KUBECONFIG="$KUBECONFIG" ARGOCD_TLS_DATA_PATH="$a/tls"
		ARGOCD_SSH_DATA_PATH="$a/ssh" ARGOCD_GNUPGHOME="$a/gpg/keys" ARGOCD_GPG_DATA_PATH="$a/gpg/source"
		ARGOCD_GPG_ENABLED=false TMPDIR="$a/tmp" PATH="$bin:$PATH")
	run argocd-repo-server env "${env[@]}" ARGOCD_BINARY_NAME=argocd-repo-server "$bin/argocd" \
		--port 8081 --metrics-port 8084 --redis 127.0.0.1:6379 --loglevel warn
	run argocd-application-controller env "${env[@]}" HOSTNAME=argocd-application-controller-0 \
		ARGOCD_BINARY_NAME=argocd-application-controller "$bin/argocd" \
		--namespace argocd --redis 127.0.0.1:6379 --repo-server 127.0.0.1:8081 --metrics-port 8082 \
		--loglevel warn --app-resync 180 --self-heal-timeout-seconds 0
	run argocd-applicationset-controller env "${env[@]}" ARGOCD_BINARY_NAME=argocd-applicationset-controller "$bin/argocd" \
		--namespace argocd --argocd-repo-server 127.0.0.1:8081 --metrics-addr 127.0.0.1:8085 --probe-addr 127.0.0.1:8086 \
		--loglevel warn --enable-leader-election=false
	ready argocd-repo-server 120 curl -sf http://127.0.0.1:8084/healthz
	ready argocd-application-controller 120 curl -sf http://127.0.0.1:8082/healthz
	log "up in $((SECONDS - t0))s: export KUBECONFIG=$repo/.testenv/kubeconfig"
}

down() {
	for n in argocd-applicationset-controller argocd-application-controller argocd-repo-server redis kwok \
		kube-scheduler kube-controller-manager kube-apiserver etcd; do
		local f="$state/run/$n.pid"
		[ -f "$f" ] || continue
		local pid
		pid=$(cat "$f")
		if kill -0 "$pid" 2>/dev/null; then
			kill "$pid" 2>/dev/null || true
			for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -9 "$pid" 2>/dev/null || true
		fi
		rm -f "$f"
	done
	rm -rf "$state" "$repo/.testenv/kubeconfig"
}

case "${1:-}" in
build) build ;;
up) up ;;
down) down ;;
*)
	echo "usage: $0 build|up|down" >&2
	exit 2
	;;
esac
