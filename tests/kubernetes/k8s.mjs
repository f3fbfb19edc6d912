// The Kubernetes side of tests/kubernetes, on the manifests as
// `kubectl kustomize` renders them (multi-document YAML files):
//
//   node k8s.mjs validate FILE...
//       every object against the Kubernetes API schema (kubernetes-models'
//       validators, generated from the API's OpenAPI), plus what those
//       leave out: a field the API does not have is an error, as
//       `kubectl apply` (strict field validation) makes it
//   node k8s.mjs json FILE
//       the objects as one JSON array (for jq)
//   node k8s.mjs pod FILE KIND/NAME OPTIONS...
//       the pod of a workload as podman would have to run it to do what the
//       kubelet does: a JSON object {init: [ARGS...], main: [ARGS...],
//       probes: {CONTAINER: {startup, readiness, liveness}}, files: [...]}
//       where each ARGS is the argument list of one `podman run` (the
//       init containers, then the long-running ones), with the same
//       command, args, environment (envFrom, the downward API, service
//       links, $(VAR) expansion as the kubelet does it), capabilities,
//       read-only root and volumes. OPTIONS:
//         --node NAME --host-ip IP    spec.nodeName, status.hostIP
//         --netns PATH                the host network (hostNetwork pods only)
//         --host-root DIR             host paths live under DIR ...
//         --host-map PATH=DIR         ... but PATH (and below) is DIR
//         --service NAME=IP           a Service of the namespace (service links)
//         --files DIR                 where ConfigMap/Secret/PVC volumes are made
//         --rewrite-configmap NAME    host paths in NAME's values mapped as
//                                     the host paths (a conflist the host reads)
//         --name PREFIX               container names PREFIX-<container>
import { readFileSync, mkdirSync, writeFileSync, symlinkSync, existsSync, realpathSync, chmodSync, closeSync, openSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

const here = dirname(fileURLToPath(import.meta.url));
const models = join(here, "node_modules", "kubernetes-models");

function load(file) {
	return parseAllDocuments(readFileSync(file, "utf8")).map((d) => {
		if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
		return d.toJS();
	}).filter((o) => o);
}

// apiVersion + kind -> the model's module path (without extension)
function modelPath(o) {
	const [group, version] = o.apiVersion.includes("/") ? o.apiVersion.split("/") : [null, o.apiVersion];
	return join(models, ...(group ? [group, version] : [version]), o.kind);
}

// --- unknown fields, from the models' type declarations ----------------
// Each model's .d.ts declares its interface's fields and imports the
// interfaces of the nested objects: enough to know every field the API has.
const ifaces = new Map(); // d.ts path -> { fields: Map(name -> type), imports: Map(iface -> d.ts path) }

function dts(path) {
	if (ifaces.has(path)) return ifaces.get(path);
	const text = readFileSync(path, "utf8");
	const imports = new Map();
	for (const m of text.matchAll(/import \{ (\w+) \} from "([^"]+)";/g)) {
		let p = m[2];
		if (p.startsWith(".")) p = join(dirname(path), p.replace(/\.js$/, ".d.ts"));
		else p = join(here, "node_modules", p.replace(/\.js$/, "") + ".d.ts");
		imports.set(m[1], p);
	}
	let fields = null;
	const body = text.match(/export interface \w+(?: extends [\w, ]+)? \{\n([\s\S]*?)\n\}/);
	if (body) {
		fields = new Map();
		if (/export interface \w+ extends TypeMeta/.test(text)) {
			fields.set("apiVersion", "string");
			fields.set("kind", "string");
		}
		// top-level members only: a nested "{ [key: string]: X; }" is one type
		let depth = 0, cur = "";
		for (const line of body[1].split("\n")) {
			if (/^\s*(\/\*\*|\*)/.test(line)) continue;
			cur += line + "\n";
			depth += (line.match(/\{/g) || []).length - (line.match(/\}/g) || []).length;
			if (depth === 0 && /;\s*$/.test(line)) {
				const m = cur.match(/^\s*"([^"]+)"\??: ([\s\S]*);\s*$/);
				if (m) fields.set(m[1], m[2].trim());
				cur = "";
			}
		}
	}
	const r = { fields, imports };
	ifaces.set(path, r);
	return r;
}

function unknownFields(obj, path, where, out) {
	const d = dts(path);
	if (!d.fields || obj === null || typeof obj !== "object" || Array.isArray(obj)) return;
	for (const [k, v] of Object.entries(obj)) {
		const type = d.fields.get(k);
		if (type === undefined) {
			out.push(`${where}.${k}: no such field`);
			continue;
		}
		const ref = type.match(/\b(I(?:IoK8s|Io)\w*)\b/);
		if (!ref || !d.imports.has(ref[1])) continue;
		const sub = d.imports.get(ref[1]);
		const isMap = /^\{\s*\[key: string\]/.test(type);
		if (/^Array</.test(type) && Array.isArray(v)) v.forEach((x, i) => unknownFields(x, sub, `${where}.${k}[${i}]`, out));
		else if (isMap && v && typeof v === "object") for (const [mk, mv] of Object.entries(v)) unknownFields(mv, sub, `${where}.${k}.${mk}`, out);
		else if (!isMap) unknownFields(v, sub, `${where}.${k}`, out);
	}
}

async function validate(files) {
	let bad = 0, n = 0;
	for (const file of files) {
		for (const o of load(file)) {
			const id = `${file}: ${o.kind}/${o.metadata?.name}`;
			n++;
			const p = modelPath(o);
			if (!existsSync(p + ".js")) {
				console.log(`not ok - ${id}: unknown apiVersion/kind ${o.apiVersion} ${o.kind}`);
				bad++;
				continue;
			}
			const mod = await import(p + ".js");
			const errs = [];
			try {
				new mod[o.kind](o).validate();
			} catch (e) {
				for (const x of e.errors || [{ instancePath: "", message: e.message }])
					errs.push(`${x.instancePath || "/"} ${x.message}`);
			}
			unknownFields(o, p + ".d.ts", o.kind, errs);
			if (errs.length) {
				bad++;
				console.log(`not ok - ${id}`);
				for (const e of errs) console.log(`#   ${e}`);
			} else console.log(`ok - ${id} validates`);
		}
	}
	console.log(`# ${n} objects, ${bad} invalid`);
	process.exit(bad || !n ? 1 : 0);
}

// --- a pod as podman command lines --------------------------------------

function opts(argv) {
	const o = { hostMap: [], service: [], rewrite: [] };
	for (let i = 0; i < argv.length; i += 2) {
		const k = argv[i], v = argv[i + 1];
		if (v === undefined) throw new Error(`${k}: no value`);
		switch (k) {
		case "--node": o.node = v; break;
		case "--host-ip": o.hostIP = v; break;
		case "--netns": o.netns = v; break;
		case "--host-root": o.hostRoot = v; break;
		case "--host-map": o.hostMap.push(v.split("=")); break;
		case "--service": o.service.push(v.split("=")); break;
		case "--files": o.files = v; break;
		case "--rewrite-configmap": o.rewrite.push(v); break;
		case "--name": o.name = v; break;
		default: throw new Error(`unknown option ${k}`);
		}
	}
	for (const k of ["node", "hostIP", "netns", "hostRoot", "files", "name"])
		if (!o[k]) throw new Error(`--${k} is required`);
	return o;
}

function hostPath(o, p) {
	for (const [from, to] of o.hostMap)
		if (p === from || p.startsWith(from + "/")) return to + p.slice(from.length);
	return o.hostRoot + p;
}

// $(VAR) as the kubelet expands it: defined names replaced, $$ is $,
// anything else left as it is.
function expand(s, env) {
	return s.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (m, name) =>
		m === "$$" ? "$" : Object.prototype.hasOwnProperty.call(env, name) ? env[name] : m);
}

// A ConfigMap or Secret volume as the kubelet lays it out (its atomic
// writer): DIR/..<ts>/KEY, DIR/..data -> ..<ts>, DIR/KEY -> ..data/KEY.
function projected(dir, data, mode) {
	const ts = "..2026_01_01_00_00_00.000000001";
	mkdirSync(join(dir, ts), { recursive: true });
	for (const [k, v] of Object.entries(data)) {
		writeFileSync(join(dir, ts, k), v);
		chmodSync(join(dir, ts, k), mode);
	}
	if (!existsSync(join(dir, "..data"))) symlinkSync(ts, join(dir, "..data"));
	for (const k of Object.keys(data))
		if (!existsSync(join(dir, k))) symlinkSync(join("..data", k), join(dir, k));
}

function pod(file, ref, argv) {
	const o = opts(argv);
	const objs = load(file);
	const [kind, name] = ref.split("/");
	const w = objs.find((x) => x.kind === kind && x.metadata.name === name);
	if (!w) throw new Error(`${ref} not in ${file}`);
	const ns = w.metadata.namespace;
	const spec = w.spec.template.spec;
	if (!spec.hostNetwork) throw new Error(`${ref}: only hostNetwork pods run here`);
	const byName = (k, n) => {
		const x = objs.find((y) => y.kind === k && y.metadata.name === n && y.metadata.namespace === ns);
		if (!x) throw new Error(`${ref}: ${k} ${n} not found in ${ns}`);
		return x;
	};
	const secretData = (s) => Object.fromEntries(Object.entries(s.data || {}).map(([k, v]) => [k, Buffer.from(v, "base64")])
		.concat(Object.entries(s.stringData || {})));
	const files = [];
	const volArgs = new Map(); // volume name -> { kind, src, device }
	for (const v of spec.volumes || []) {
		if (v.hostPath) {
			const src = hostPath(o, v.hostPath.path);
			const t = v.hostPath.type || "";
			if (t === "DirectoryOrCreate") mkdirSync(src, { recursive: true });
			else if (t === "FileOrCreate") { mkdirSync(dirname(src), { recursive: true }); closeSync(openSync(src, "a")); }
			else if (t === "CharDevice" && !existsSync(src)) throw new Error(`${v.name}: no device ${src}`);
			else if (t === "Directory" && !existsSync(src)) throw new Error(`${v.name}: no directory ${src}`);
			volArgs.set(v.name, { src, device: t === "CharDevice" });
		} else if (v.configMap || v.secret) {
			const dir = join(o.files, `${o.name}-${v.name}`);
			let data, mode;
			if (v.configMap) {
				const cm = byName("ConfigMap", v.configMap.name);
				data = { ...(cm.data || {}) };
				if (o.rewrite.includes(cm.metadata.name))
					for (const k of Object.keys(data)) {
						let s = data[k];
						for (const [from, to] of o.hostMap) s = s.split(from + "/").join(to + "/");
						for (const m of [...new Set(s.match(/\/(run|opt|etc|var)\/[^"\s]*/g) || [])])
							if (!o.hostMap.some(([, to]) => m.startsWith(to))) s = s.split(m).join(o.hostRoot + m);
						data[k] = s;
					}
				mode = v.configMap.defaultMode ?? 0o644;
			} else {
				data = secretData(byName("Secret", v.secret.secretName));
				mode = v.secret.defaultMode ?? 0o644;
			}
			projected(dir, data, mode);
			files.push(dir);
			volArgs.set(v.name, { src: dir });
		} else if (v.persistentVolumeClaim) {
			byName("PersistentVolumeClaim", v.persistentVolumeClaim.claimName);
			const dir = join(o.files, `pvc-${v.persistentVolumeClaim.claimName}`);
			mkdirSync(dir, { recursive: true });
			volArgs.set(v.name, { src: dir });
		} else if (v.emptyDir) {
			const dir = join(o.files, `${o.name}-${v.name}`);
			mkdirSync(dir, { recursive: true });
			volArgs.set(v.name, { src: dir });
		} else throw new Error(`${ref}: volume ${v.name}: kind not handled here`);
	}

	// service links: <NAME>_SERVICE_HOST, _SERVICE_PORT(_<PORT NAME>), _PORT...
	const links = {};
	if (spec.enableServiceLinks !== false)
		for (const [svcName, ip] of o.service) {
			const svc = byName("Service", svcName);
			const up = svcName.toUpperCase().replace(/-/g, "_");
			const p0 = svc.spec.ports[0];
			links[`${up}_SERVICE_HOST`] = ip;
			links[`${up}_SERVICE_PORT`] = String(p0.port);
			for (const p of svc.spec.ports) {
				if (p.name) links[`${up}_SERVICE_PORT_${p.name.toUpperCase().replace(/-/g, "_")}`] = String(p.port);
				const proto = (p.protocol || "TCP").toLowerCase();
				links[`${up}_PORT_${p.port}_${proto.toUpperCase()}`] = `${proto}://${ip}:${p.port}`;
				links[`${up}_PORT_${p.port}_${proto.toUpperCase()}_PROTO`] = proto;
				links[`${up}_PORT_${p.port}_${proto.toUpperCase()}_PORT`] = String(p.port);
				links[`${up}_PORT_${p.port}_${proto.toUpperCase()}_ADDR`] = ip;
			}
			links[`${up}_PORT`] = `${(p0.protocol || "TCP").toLowerCase()}://${ip}:${p0.port}`;
		}
	const field = (f) => ({
		"spec.nodeName": o.node, "status.hostIP": o.hostIP, "status.podIP": o.hostIP,
		"metadata.name": `${name}-${o.node}`, "metadata.namespace": ns,
	})[f.fieldPath] ?? (() => { throw new Error(`fieldRef ${f.fieldPath} not handled`); })();

	const run = (c, init) => {
		const env = {};
		for (const src of c.envFrom || []) {
			const data = src.configMapRef ? byName("ConfigMap", src.configMapRef.name).data || {}
				: Object.fromEntries(Object.entries(secretData(byName("Secret", src.secretRef.name))).map(([k, v]) => [k, String(v)]));
			for (const [k, v] of Object.entries(data)) env[(src.prefix || "") + k] = v;
		}
		// expansion sees the service links and everything defined so far
		for (const e of c.env || []) {
			if (e.value !== undefined) env[e.name] = expand(e.value, { ...links, ...env });
			else if (e.valueFrom?.fieldRef) env[e.name] = field(e.valueFrom.fieldRef);
			else if (e.valueFrom?.configMapKeyRef) env[e.name] = byName("ConfigMap", e.valueFrom.configMapKeyRef.name).data[e.valueFrom.configMapKeyRef.key];
			else if (e.valueFrom?.secretKeyRef) env[e.name] = String(secretData(byName("Secret", e.valueFrom.secretKeyRef.name))[e.valueFrom.secretKeyRef.key]);
			else env[e.name] = "";
		}
		const all = { ...links, ...env };
		const a = ["--name", `${o.name}-${c.name}`, "--network", `ns:${o.netns}`, "--pull", "never"];
		a.push(init ? "--rm" : "-d");
		const sc = c.securityContext || {};
		if (sc.privileged) a.push("--privileged");
		for (const cap of sc.capabilities?.drop || []) a.push("--cap-drop", cap.toLowerCase());
		for (const cap of sc.capabilities?.add || []) a.push("--cap-add", cap.toLowerCase());
		if (sc.readOnlyRootFilesystem) a.push("--read-only", "--read-only-tmpfs=false");
		if (sc.allowPrivilegeEscalation === false) a.push("--security-opt", "no-new-privileges");
		for (const [k, v] of Object.entries(all)) a.push("--env", `${k}=${v}`);
		for (const m of c.volumeMounts || []) {
			const v = volArgs.get(m.name);
			if (!v) throw new Error(`${c.name}: no volume ${m.name}`);
			if (v.device) { a.push("--device", `${v.src}:${m.mountPath}`); continue; }
			// subPath: the kubelet mounts the file the path resolves to
			const src = m.subPath ? realpathSync(join(v.src, m.subPath)) : v.src;
			const flags = [m.readOnly ? "ro" : "rw"];
			if (m.mountPropagation === "HostToContainer") flags.push("rslave");
			if (m.mountPropagation === "Bidirectional") flags.push("rshared");
			a.push("--volume", `${src}:${m.mountPath}:${flags.join(",")}`);
		}
		if (!c.command) throw new Error(`${c.name}: no command (the image has no entrypoint)`);
		a.push("--entrypoint", JSON.stringify([c.command[0]]));
		a.push(c.image, ...c.command.slice(1).map((x) => expand(x, all)), ...(c.args || []).map((x) => expand(x, all)));
		return a;
	};
	const probes = {};
	for (const c of spec.containers)
		probes[c.name] = { startup: c.startupProbe || null, readiness: c.readinessProbe || null, liveness: c.livenessProbe || null };
	console.log(JSON.stringify({
		init: (spec.initContainers || []).map((c) => run(c, true)),
		main: spec.containers.map((c) => run(c, false)),
		probes, files,
	}));
}

const [cmd, ...rest] = process.argv.slice(2);
try {
	if (cmd === "validate") await validate(rest);
	else if (cmd === "json") console.log(JSON.stringify(load(rest[0])));
	else if (cmd === "pod") pod(rest[0], rest[1], rest.slice(2));
	else throw new Error("usage: k8s.mjs validate FILE... | pod FILE KIND/NAME OPTIONS...");
} catch (e) {
	console.error(`k8s.mjs: ${e.message}`);
	process.exit(2);
}
