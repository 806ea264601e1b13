// Offline checks of deploy/ (test.sh's deploy stage runs them):
//
//   node check.mjs rule               deploy/k8s/base/prometheusrule.yaml holds
//                                     the groups of deploy/alerts/nq.rules.yml
//   node check.mjs --write-rule       writes that PrometheusRule from the file
//   node check.mjs manifests F...     every document of the rendered manifests
//                                     F validates against its schema
//
// Schemas: Kubernetes' own and the Prometheus Operator's from the
// kubernetes-models packages (wrong types and missing fields, not unknown
// fields); KEDA's ScaledObject against its CRD, kept in schemas/.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import yaml from "js-yaml";
import Ajv from "ajv";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const rulesFile = path.join(root, "deploy/alerts/nq.rules.yml");
const ruleResource = path.join(root, "deploy/k8s/base/prometheusrule.yaml");
const kedaCrd = path.join(here, "schemas/keda.sh_scaledobjects.yaml");

function prometheusRule() {
  const groups = yaml.load(fs.readFileSync(rulesFile, "utf8")).groups;
  return {
    apiVersion: "monitoring.coreos.com/v1",
    kind: "PrometheusRule",
    metadata: { name: "nq", labels: { "app.kubernetes.io/name": "nq" } },
    spec: { groups },
  };
}

function writeRule() {
  const head =
    "# Written from deploy/alerts/nq.rules.yml by\n" +
    "# `node tests/deploy/check.mjs --write-rule`: edit that file, not this.\n";
  fs.writeFileSync(ruleResource, head + yaml.dump(prometheusRule(), { lineWidth: 100 }));
}

function checkRule() {
  const want = JSON.stringify(prometheusRule());
  const got = JSON.stringify(yaml.load(fs.readFileSync(ruleResource, "utf8")));
  if (want !== got)
    throw new Error(`${ruleResource} differs from ${rulesFile}: run node tests/deploy/check.mjs --write-rule`);
  console.log("prometheusrule.yaml holds the rules of nq.rules.yml");
}

// An object schema that names its fields takes no others, as the API
// server with strict field validation (kubectl's default) refuses them.
function closeObjects(s) {
  if (!s || typeof s !== "object") return;
  if (s.properties && s.additionalProperties === undefined &&
      !s["x-kubernetes-preserve-unknown-fields"])
    s.additionalProperties = false;
  for (const v of Object.values(s)) closeObjects(v);
}

// KEDA's schema for the CRD's served version, as the API server applies it
// (its CEL rules, x-kubernetes-validations, are not evaluated here).
function kedaValidator() {
  const crd = yaml.load(fs.readFileSync(kedaCrd, "utf8"));
  const schema = crd.spec.versions.find((v) => v.name === "v1alpha1").schema.openAPIV3Schema;
  closeObjects(schema.properties.spec);
  const ajv = new Ajv({ strict: false, allErrors: true });
  for (const k of ["x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-validations", "x-kubernetes-map-type", "x-kubernetes-list-type"])
    ajv.addKeyword(k);
  ajv.addFormat("int32", { type: "number", validate: (n) => Number.isInteger(n) && Math.abs(n) < 2 ** 31 });
  ajv.addFormat("date-time", true);
  return ajv.compile(schema);
}

async function modelOf(doc) {
  const [group, version] = doc.apiVersion.includes("/")
    ? doc.apiVersion.split("/")
    : ["", doc.apiVersion];
  const pkg = group === "monitoring.coreos.com"
    ? `@kubernetes-models/prometheus-operator/${group}/${version}`
    : group === "" ? `kubernetes-models/${version}` : `kubernetes-models/${group}/${version}`;
  const mod = await import(pkg);
  if (!mod[doc.kind]) throw new Error(`no schema for ${doc.apiVersion} ${doc.kind}`);
  return mod[doc.kind];
}

async function checkManifests(files) {
  const keda = kedaValidator();
  let n = 0;
  for (const file of files) {
    for (const doc of yaml.loadAll(fs.readFileSync(file, "utf8"))) {
      if (!doc) continue;
      const what = `${file}: ${doc.kind} ${doc.metadata?.name}`;
      if (doc.apiVersion === "keda.sh/v1alpha1" && doc.kind === "ScaledObject") {
        if (!keda(doc)) throw new Error(`${what}: ${JSON.stringify(keda.errors)}`);
      } else {
        const Model = await modelOf(doc);
        try {
          new Model(doc).validate();
        } catch (e) {
          throw new Error(`${what}: ${e.message}`);
        }
      }
      n++;
    }
  }
  if (n === 0) throw new Error("no manifest to check");
  console.log(`${n} manifests valid`);
}

const [cmd, ...args] = process.argv.slice(2);
try {
  if (cmd === "--write-rule") writeRule();
  else if (cmd === "rule") checkRule();
  else if (cmd === "manifests") await checkManifests(args);
  else throw new Error("usage: check.mjs rule | --write-rule | manifests FILE...");
} catch (e) {
  console.error(`check.mjs: ${e.message}`);
  process.exit(1);
}
