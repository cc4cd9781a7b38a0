package scaffold

const shipitYAML = `# shipit: https://github.com/shipit-dev/shipit (see its README for every key).
# Edit registry to your ECR registry (or any OCI registry).
registry: {{.Registry}}
cache:
  export: registry          # CI runners share a BuildKit cache at <repository>:buildcache
platforms: [linux/amd64]    # what the cluster's nodes run, whatever machine builds (an Apple-silicon laptop's own is linux/arm64)
images:
{{- range .Images}}
  {{.Name}}:
    context: {{.Context}}
    dockerfile: {{.Dockerfile}}
{{- if .Target}}
    target: {{.Target}}
{{- end}}
{{- if and $.Rails (eq .Name "app")}}
    # Private gems and the master key reach the build only as secret mounts:
    # secrets:
    #   - {id: bundle_token, env: BUNDLE_GITHUB__COM}
    #   - {id: rails_master_key, src: config/master.key}
    # ssh: [default]
{{- end}}
{{- end}}
deploy:
  repo: .
  branch: main
{{- if .ImageUpdater}}
  mode: image-updater       # Argo CD Image Updater writes {{index .Envs 0}}'s pins (k8s/argocd/image-updater.yaml)
{{- end}}
  environments:             # in promotion order: release pins staging, promote moves production
{{- range .Envs}}
    - name: {{.}}
      overlays: [k8s/overlays/{{.}}]
      argocd: {applications: [{{$.Name}}-{{.}}]}
{{- end}}
{{- if not .ImageUpdater}}
  previews:                 # shipit preview up|down|list|gc NAME: one folder per pull request (.github/workflows/preview.yml)
    from: {{index .Envs 0}}
    dir: k8s/previews
    namespace: "{{.Name}}-{{"{{.Name}}"}}"
    host: "{{"{{.Name}}"}}.preview.example.com"   # edit: a wildcard DNS name for your ingress
    max: 10
    argocd: {application: "{{.Name}}-{{"{{.Name}}"}}", applicationset: {{.Name}}-previews}   # k8s/argocd/previews.yaml
{{- end}}
`

// dockerignore keeps what Rails' own .dockerignore keeps out of the
// build context (secrets first: an image a developer pushes must not hold
// config/master.key or an .env file), and shipit's own state.
const dockerignore = `# Secrets never go into an image.
/.env*
!/.env.example
/config/master.key
/config/credentials/*.key

# Git, shipit's build state and the deploy manifests.
/.git/
/.gitignore
/.shipit/
/k8s/

# Logs, temporary files, uploads and build output.
/log/*
/tmp/*
!/log/.keep
!/tmp/.keep
/tmp/pids/*
!/tmp/pids/
!/tmp/pids/.keep
/storage/*
!/storage/.keep
/tmp/storage/*
!/tmp/storage/
!/tmp/storage/.keep
/public/assets
/node_modules/
/app/assets/builds/*
!/app/assets/builds/.keep

# CI and editor files.
/.github/
/.dockerignore
`

const baseKustomization = `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - deployment.yaml
  - service.yaml
  - ingress.yaml
  - configmap.yaml
{{- if .Rails}}
  - migrate-job.yaml
{{- end}}
{{- if .Worker}}
  - worker.yaml
{{- end}}
`

// probeTmpl is one probe of the app container: HTTP on Rails' /up when the app
// has it (X-Forwarded-Proto keeps force_ssl from redirecting the kubelet),
// TCP otherwise.
const probeTmpl = `{{define "probe"}}
{{- if .Health}}
            httpGet:
              path: /up
              port: app
              httpHeaders: [{name: X-Forwarded-Proto, value: https}]
{{- else}}
            tcpSocket: {port: app}
{{- end}}
{{- end}}`

// envTmpl is the environment every container of the app image gets: the
// ConfigMap and the Secret named after the app.
const envTmpl = `{{define "env"}}
          envFrom:
            - configMapRef: {name: {{.Name}}{{if .Optional}}, optional: true{{end}}}
            - secretRef: {name: {{.Name}}}   # RAILS_MASTER_KEY, SECRET_KEY_BASE, DATABASE_URL: k8s/base/secret.example.yaml
{{- end}}`

// runTmpl is a container's command and args, each when set.
const runTmpl = `{{define "run"}}
{{- if .Command}}
          command: {{.Command}}
{{- end}}
{{- if .Args}}
          args: {{.Args}}
{{- end}}
{{- end}}`

// resourcesTmpl is what a container of the app image requests.
const resourcesTmpl = `{{define "resources"}}
          resources:
            requests: {cpu: 250m, memory: {{.Memory}}}
            limits: {memory: {{.MemoryLimit}}}
{{- end}}`

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{.Name}}
  labels: {app.kubernetes.io/name: {{.Name}}}
spec:
  replicas: 2
  selector:
    matchLabels: {app.kubernetes.io/name: {{.Name}}}
  template:
    metadata:
      labels: {app.kubernetes.io/name: {{.Name}}}
    spec:
{{- if .Rails}}
      # nginx serves the assets of this release and of the one before it
      # (app-previous: shipit release moves that pin to what app pinned),
      # so that pages rendered by either release's pods during a rolling
      # update find their assets. The current release's files win.
      initContainers:
        - name: assets-previous
          image: app-previous
          command: [cp, -r, {{.Workdir}}/public/., /assets/]
          volumeMounts: [{name: assets, mountPath: /assets}]
          resources: {requests: {cpu: 50m, memory: 64Mi}, limits: {memory: 128Mi}}
        - name: assets
          image: app
          command: [cp, -r, {{.Workdir}}/public/., /assets/]
          volumeMounts: [{name: assets, mountPath: /assets}]
          resources: {requests: {cpu: 50m, memory: 64Mi}, limits: {memory: 128Mi}}
{{- end}}
      containers:
        - name: app
          image: app
{{- with .Web}}{{template "run" .}}{{end}}
          ports: [{name: app, containerPort: {{.AppPort}}}]
{{- template "env" .EnvFrom}}
{{- template "resources" .}}
          startupProbe:   # boot may take a while: up to 2 minutes
{{- template "probe" .}}
            periodSeconds: 2
            failureThreshold: 60
          readinessProbe:
{{- template "probe" .}}
            periodSeconds: 5
          livenessProbe:
{{- template "probe" .}}
            periodSeconds: 10
            failureThreshold: 3
{{- if .Rails}}
        - name: nginx
          image: nginx
          ports: [{name: http, containerPort: 8080}]
          volumeMounts: [{name: assets, mountPath: /usr/share/nginx/html}]
          resources:
            requests: {cpu: 50m, memory: 32Mi}
            limits: {memory: 128Mi}
          readinessProbe:
            tcpSocket: {port: http}
            periodSeconds: 5
          livenessProbe:
            tcpSocket: {port: http}
            periodSeconds: 10
      volumes:
        - name: assets
          emptyDir: {}
{{- end}}
`

const service = `apiVersion: v1
kind: Service
metadata:
  name: {{.Name}}
spec:
  selector: {app.kubernetes.io/name: {{.Name}}}
  ports:
    - name: http
      port: 80
      targetPort: {{if .Rails}}http{{else}}app{{end}}
`

// ingress exposes the Service; previews rewrite its hosts.
const ingress = `# Edit the host (and the TLS secret your certificate lands in). Each
# preview serves at deploy.previews.host instead: shipit preview rewrites
# every host of this Ingress in the preview's folder.
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {{.Name}}
spec:
  tls:
    - hosts: [{{.Name}}.example.com]
      secretName: {{.Name}}-tls
  rules:
    - host: {{.Name}}.example.com
      http:
        paths:
          - path: /
            pathType: Prefix
            backend: {service: {name: {{.Name}}, port: {name: http}}}
`

// previewsAppSet turns each folder of k8s/previews into an Application in
// a namespace of its own; deleting the folder deletes what it ran.
const previewsAppSet = `# One Argo CD Application per preview: each folder of k8s/previews (shipit
# preview up writes them, shipit preview down removes them). The resources
# finalizer deletes what a preview ran when its folder goes.
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: {{.Name}}-previews
  namespace: argocd
spec:
  goTemplate: true
  goTemplateOptions: ["missingkey=error"]
  generators:
    - git:
        repoURL: {{.RepoURL}}
        revision: main
        directories:
          - path: k8s/previews/*
  template:
    metadata:
      name: '{{.Name}}-{{"{{.path.basename}}"}}'
      finalizers: [resources-finalizer.argocd.argoproj.io]
    spec:
      project: default
      source:
        repoURL: {{.RepoURL}}
        targetRevision: main
        path: '{{"{{.path.path}}"}}'
      destination:
        server: https://kubernetes.default.svc
        namespace: '{{.Name}}-{{"{{.path.basename}}"}}'
      syncPolicy:
        automated: {prune: true, selfHeal: true}
        syncOptions: [CreateNamespace=true]
`

// configMap holds the app's settings that are not secret.
const configMap = `# {{.Name}}'s settings that are not secret, for every container of the app
# image. Secrets go in the Secret {{.Name}} (k8s/base/secret.example.yaml).
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{.Name}}
data:
{{- if .Rails}}
  RAILS_ENV: production
  RAILS_LOG_TO_STDOUT: "1"
  RAILS_MAX_THREADS: "5"
  PORT: "{{.AppPort}}"
{{- else}}
  PORT: "{{.AppPort}}"
{{- end}}
`

// secretExample is never applied: it is not in the kustomization. A Secret
// with placeholder values synced by Argo CD would overwrite the real one.
// It holds no credential: every value is a placeholder that says what goes
// there.
//
//nolint:gosec // G101: placeholders, no credential
const secretExample = `# NOT APPLIED: an example of the Secret {{.Name}} the app reads its secrets
# from. It is deliberately not in k8s/base/kustomization.yaml: never commit
# real values. Create the Secret in each environment's namespace, e.g.
#
#   kubectl -n {{.Name}}-staging create secret generic {{.Name}} \
#     --from-file=RAILS_MASTER_KEY=config/master.key \
#     --from-literal=DATABASE_URL=postgres://...
#
# or with External Secrets, Sealed Secrets or SOPS. Pods wait until it exists.
apiVersion: v1
kind: Secret
metadata:
  name: {{.Name}}
type: Opaque
stringData:
{{- if .Rails}}
  RAILS_MASTER_KEY: "PLACEHOLDER: the content of config/master.key"
  SECRET_KEY_BASE: "PLACEHOLDER: bin/rails secret"
  DATABASE_URL: "PLACEHOLDER: the database's URL"
{{- else}}
  EXAMPLE: "PLACEHOLDER"
{{- end}}
`

const migrateJob = `# The migration runs from the app image of the release, before the new pods
# (an Argo CD PreSync hook; the previous Job is deleted when a new one
# starts, and a finished one stays until then, with its logs).
apiVersion: batch/v1
kind: Job
metadata:
  name: {{.Name}}-migrate
  annotations:
    argocd.argoproj.io/hook: PreSync
    argocd.argoproj.io/hook-delete-policy: BeforeHookCreation
spec:
  backoffLimit: 1
  activeDeadlineSeconds: 1800
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: migrate
          image: app
{{- with .Migrate}}{{template "run" .}}{{end}}
{{- template "env" .JobEnvFrom}}
{{- template "resources" .}}
`

// worker runs the job runner init found.
const worker = `# The job runner ({{.Worker.Source}}), from the app image of the release.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{.Name}}-worker
  labels: {app.kubernetes.io/name: {{.Name}}-worker}
spec:
  replicas: 1
  selector:
    matchLabels: {app.kubernetes.io/name: {{.Name}}-worker}
  template:
    metadata:
      labels: {app.kubernetes.io/name: {{.Name}}-worker}
    spec:
      terminationGracePeriodSeconds: 60   # time to finish the jobs at hand
      containers:
        - name: worker
          image: app
{{- with .Worker}}{{template "run" .}}{{end}}
{{- template "env" .EnvFrom}}
{{- template "resources" .}}
`

const overlay = `# {{.Env}}: Argo CD syncs this directory (k8s/argocd/{{.Env}}.yaml).
# shipit release moves the image pins below; shipit pin rolls them back.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: {{.Name}}-{{.Env}}
resources:
  - ../../base
images:
{{- range .Images}}
  - name: {{.Name}}
    newName: {{$.Registry}}/{{.Name}}
{{- end}}
{{- if .Rails}}
  # The release before app's: shipit release and pin move it to what app
  # pinned, for nginx to keep serving that release's assets.
  - name: app-previous
    newName: {{$.Registry}}/app
{{- end}}
`

const application = `apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: {{.Name}}-{{.Env}}
  namespace: argocd
spec:
  project: default
  source:
    repoURL: {{.RepoURL}}
    targetRevision: main
    path: k8s/overlays/{{.Env}}
  destination:
    server: https://kubernetes.default.svc
    namespace: {{.Name}}-{{.Env}}
  syncPolicy:
    automated: {prune: true, selfHeal: true}
    syncOptions: [CreateNamespace=true]
`

const imageUpdater = `# Argo CD Image Updater for {{.Name}}-{{.Env}}: it picks shipit's newest
# release tag (alphabetical) and writes it to the overlay's kustomization.
# shipit updater-config prints this again, with the annotations form.
apiVersion: argocd-image-updater.argoproj.io/v1alpha1
kind: ImageUpdater
metadata:
  name: {{.Name}}-{{.Env}}
  namespace: argocd
spec:
  writeBackConfig:
    method: git
    gitConfig:
      branch: main
      writeBackTarget: "kustomization:k8s/overlays/{{.Env}}"
  applicationRefs:
    - namePattern: "{{.Name}}-{{.Env}}"
      commonUpdateSettings:
        updateStrategy: alphabetical
        allowTags: "regexp:^[0-9]{8}-[0-9]{6}-[0-9a-f]{7}$"
      images:
{{- range .Images}}
        - alias: {{.Name}}
          imageName: {{$.Registry}}/{{.Name}}
          manifestTargets:
            kustomize:
              name: {{.Name}}
{{- end}}
`
