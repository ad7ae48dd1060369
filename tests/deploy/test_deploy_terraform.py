"""Security properties of terraform/, read from the parsed HCL (python-hcl2), and its formatting.

`terraform init/validate/plan` need provider downloads, impossible on these machines: nothing here pretends
a plan ran. Each property family is also shown failing on a deliberately broken copy of the tree.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml
from deploy_helpers import ROOT
from hcl2 import SerializationOptions

TF = ROOT / "terraform"
OPTS = SerializationOptions(strip_string_quotes=True, explicit_blocks=False)
ENVS = ("dev", "staging", "prod")


class Tree:
    """All .tf files of a directory merged: resources, data sources, variables and locals by name."""

    def __init__(self, directory: Path) -> None:
        self.resources: dict[str, dict[str, dict[str, Any]]] = {}
        self.data: dict[str, dict[str, dict[str, Any]]] = {}
        self.variables: dict[str, dict[str, Any]] = {}
        self.locals: dict[str, Any] = {}
        for path in sorted(directory.glob("*.tf")):
            with path.open() as f:
                parsed = hcl2.load(f, serialization_options=OPTS)
            for section, target in (("resource", self.resources), ("data", self.data)):
                for block in parsed.get(section, []):
                    for rtype, named in block.items():
                        target.setdefault(rtype, {}).update(named)
            for block in parsed.get("variable", []):
                self.variables.update(block)
            for block in parsed.get("locals", []):
                self.locals.update(block)
        self.tfvars = {}
        for env in ENVS:
            with (directory / "envs" / f"{env}.tfvars").open() as f:
                self.tfvars[env] = hcl2.load(f, serialization_options=OPTS)

    def of(self, rtype: str) -> dict[str, dict[str, Any]]:
        return self.resources.get(rtype, {})

    def value(self, raw: Any, env: str) -> Any:
        """A `${var.x}` resolved from envs/<env>.tfvars, else the variable's default; others unchanged."""
        m = re.fullmatch(r"\$\{var\.(\w+)\}", raw) if isinstance(raw, str) else None
        if not m:
            return raw
        name = m.group(1)
        if name in self.tfvars[env]:
            return self.tfvars[env][name]
        return self.variables[name].get("default")


def block(body: dict[str, Any], name: str) -> dict[str, Any]:
    """A nested block (hcl2 gives a list of one dict)."""
    value = body.get(name, [{}])
    return value[0] if isinstance(value, list) else value


def covered(tree: Tree, companion: str, bucket: str) -> list[dict[str, Any]]:
    """Companion resources (versioning, encryption, ...) that apply to aws_s3_bucket.<bucket>."""
    ref = f"aws_s3_bucket.{bucket}"
    out = []
    for body in tree.of(companion).values():
        fe = str(body.get("for_each", ""))
        if ref in str(body.get("bucket", "")) or ref in fe:
            out.append(body)
        elif "local.all_buckets" in fe and ref in str(tree.locals.get("all_buckets", "")):
            out.append(body)
    return out


# ---------------------------------------------------------------- property families (each returns findings)


def rds_findings(tree: Tree) -> list[str]:
    found = []
    dbs = tree.of("aws_db_instance")
    if not dbs:
        found.append("no aws_db_instance")
    for name, db in dbs.items():
        where = f"aws_db_instance.{name}"
        if db.get("storage_encrypted") is not True or not db.get("kms_key_id"):
            found.append(f"{where}: not encrypted with a KMS key")
        if db.get("publicly_accessible") is not False:
            found.append(f"{where}: publicly accessible")
        if db.get("deletion_protection") is not True:
            found.append(f"{where}: no deletion protection")
        if "password" in db or db.get("manage_master_user_password") is not True:
            found.append(f"{where}: master password not managed by RDS (Secrets Manager)")
        for env in ENVS:
            if (tree.value(db.get("backup_retention_period"), env) or 0) < 7:
                found.append(f"{where}: backups kept < 7 days in {env}")
        multi_az = str(db.get("multi_az"))
        prod_forced = 'var.environment == "prod" ? true' in multi_az
        if not (prod_forced or tree.value(db.get("multi_az"), "prod") is True):
            found.append(f"{where}: not Multi-AZ in prod")
        pg_ref = str(db.get("parameter_group_name", ""))
        pg_name = pg_ref.split(".")[1] if pg_ref.startswith("${aws_db_parameter_group.") else ""
        pg = tree.of("aws_db_parameter_group").get(pg_name, {})
        params = {p["name"]: str(p["value"]) for p in pg.get("parameter", [])}
        if params.get("rds.force_ssl") != "1":
            found.append(f"{where}: TLS not forced (rds.force_ssl)")
    if tree.tfvars["prod"].get("rds_multi_az") is False:
        found.append("envs/prod.tfvars: rds_multi_az = false")
    return found


def redis_findings(tree: Tree) -> list[str]:
    found = []
    groups = tree.of("aws_elasticache_replication_group")
    if not groups:
        found.append("no aws_elasticache_replication_group")
    for name, g in groups.items():
        where = f"aws_elasticache_replication_group.{name}"
        if g.get("at_rest_encryption_enabled") is not True or not g.get("kms_key_id"):
            found.append(f"{where}: not encrypted at rest with a KMS key")
        if g.get("transit_encryption_enabled") is not True:
            found.append(f"{where}: no TLS in transit")
        if not g.get("auth_token"):
            found.append(f"{where}: no AUTH token")
    if (tree.tfvars["prod"].get("redis_replicas") or 0) < 1:
        found.append("envs/prod.tfvars: no Redis replica (no automatic failover)")
    return found


def s3_findings(tree: Tree) -> list[str]:
    found = []
    buckets = tree.of("aws_s3_bucket")
    if not buckets:
        found.append("no aws_s3_bucket")
    for name in buckets:
        where = f"aws_s3_bucket.{name}"
        if not any(
            block(v, "versioning_configuration").get("status") == "Enabled"
            for v in covered(tree, "aws_s3_bucket_versioning", name)
        ):
            found.append(f"{where}: versioning not enabled")
        sse = [
            block(block(e, "rule"), "apply_server_side_encryption_by_default")
            for e in covered(tree, "aws_s3_bucket_server_side_encryption_configuration", name)
        ]
        if not any(s.get("sse_algorithm") == "aws:kms" and s.get("kms_master_key_id") for s in sse):
            found.append(f"{where}: no SSE-KMS")
        flags = ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets")
        if not any(
            all(p.get(f) is True for f in flags)
            for p in covered(tree, "aws_s3_bucket_public_access_block", name)
        ):
            found.append(f"{where}: public access not fully blocked")
    for name, doc in tree.data.get("aws_iam_policy_document", {}).items():
        if name == "tls_only":
            denies = [s for s in doc.get("statement", []) if s.get("effect") == "Deny"]
            if not any(block(s, "condition").get("variable") == "aws:SecureTransport" for s in denies):
                found.append("tls_only policy does not deny insecure transport")
    return found


def eks_findings(tree: Tree) -> list[str]:
    found = []
    for name, c in tree.of("aws_eks_cluster").items():
        where = f"aws_eks_cluster.{name}"
        vpc = block(c, "vpc_config")
        if vpc.get("endpoint_public_access") is not False:
            found.append(f"{where}: public API endpoint")
        if "secrets" not in block(c, "encryption_config").get("resources", []):
            found.append(f"{where}: secrets not KMS-encrypted")
        logs = set(c.get("enabled_cluster_log_types", []))
        if logs != {"api", "audit", "authenticator", "controllerManager", "scheduler"}:
            found.append(f"{where}: control-plane logs incomplete: {sorted(logs)}")
    if not tree.of("aws_iam_openid_connect_provider"):
        found.append("no OIDC provider (IRSA impossible)")
    for name, lt in tree.of("aws_launch_template").items():
        if block(lt, "metadata_options").get("http_tokens") != "required":
            found.append(f"aws_launch_template.{name}: IMDSv2 not required")
        ebs = block(block(lt, "block_device_mappings"), "ebs")
        if ebs.get("encrypted") is not True:
            found.append(f"aws_launch_template.{name}: node volumes not encrypted")
    for name, ng in tree.of("aws_eks_node_group").items():
        if "remote_access" in ng:
            found.append(f"aws_eks_node_group.{name}: SSH remote access")
    return found


def iam_findings(tree: Tree) -> list[str]:
    """IRSA trust pinned to one service account and audience; no wildcard action but in the KMS key policy."""
    found = []
    docs = tree.data.get("aws_iam_policy_document", {})
    irsa = docs.get("irsa_assume")
    if irsa is None:
        found.append("no irsa_assume policy document")
    else:
        stmt = irsa["statement"][0]
        conditions = {str(c["variable"]).rsplit(":", 1)[-1].rstrip("}"): c for c in stmt.get("condition", [])}
        sub, aud = conditions.get("sub"), conditions.get("aud")
        if not sub or sub["test"] != "StringEquals" or "system:serviceaccount:" not in str(sub["values"]):
            found.append("IRSA trust not pinned to a service account (StringEquals :sub)")
        if not aud or aud["values"] != ["sts.amazonaws.com"]:
            found.append("IRSA trust does not pin the audience sts.amazonaws.com")
    for name, doc in docs.items():
        if name == "kms":
            continue
        dynamic = [c for d in doc.get("dynamic", []) for c in block(d, "statement").get("content", [])]
        for s in doc.get("statement", []) + dynamic:
            if s.get("effect", "Allow") == "Allow" and any(
                a == "*" or a.endswith(":*") for a in s.get("actions", [])
            ):
                found.append(f"data.aws_iam_policy_document.{name}: wildcard action {s.get('actions')}")
            if s.get("effect", "Allow") == "Allow" and s.get("resources") == ["*"]:
                found.append(f"data.aws_iam_policy_document.{name}: Resource *")
    return found


def kms_and_logs_findings(tree: Tree) -> list[str]:
    found = []
    for name, key in tree.of("aws_kms_key").items():
        if key.get("enable_key_rotation") is not True:
            found.append(f"aws_kms_key.{name}: rotation off")
    for name, lg in tree.of("aws_cloudwatch_log_group").items():
        if not lg.get("kms_key_id"):
            found.append(f"aws_cloudwatch_log_group.{name}: not KMS-encrypted")
        for env in ENVS:
            if (tree.value(lg.get("retention_in_days"), env) or 0) < 365:
                found.append(f"aws_cloudwatch_log_group.{name}: retention < 365 days in {env}")
    for name, topic in tree.of("aws_sns_topic").items():
        if not topic.get("kms_master_key_id"):
            found.append(f"aws_sns_topic.{name}: not encrypted")
    return found


FAMILIES = {
    "rds": rds_findings,
    "redis": redis_findings,
    "s3": s3_findings,
    "eks": eks_findings,
    "iam": iam_findings,
    "kms_logs": kms_and_logs_findings,
}


@pytest.fixture(scope="module")
def tree() -> Tree:
    return Tree(TF)


@pytest.mark.parametrize("family", FAMILIES)
def test_terraform_security_property(family, tree) -> None:
    assert FAMILIES[family](tree) == []


# One deliberately broken copy per family: (file, text to replace, replacement, expected finding).
BREAKS = {
    "rds": ("rds.tf", "storage_encrypted     = true", "storage_encrypted     = false", "not encrypted"),
    "rds-multi-az": (
        "envs/prod.tfvars",
        "rds_multi_az              = true",
        "rds_multi_az              = false",
        "rds_multi_az = false",
    ),
    "rds-tls": ("rds.tf", 'value = "1"', 'value = "0"', "TLS not forced"),
    "redis": (
        "elasticache.tf",
        "transit_encryption_enabled = true",
        "transit_encryption_enabled = false",
        "no TLS in transit",
    ),
    "s3": (
        "s3.tf",
        "restrict_public_buckets = true",
        "restrict_public_buckets = false",
        "public access not fully blocked",
    ),
    "s3-versioning": (
        "s3.tf",
        'status = "Enabled"\n  }',
        'status = "Suspended"\n  }',
        "versioning not enabled",
    ),
    "eks": (
        "eks.tf",
        "endpoint_public_access  = false",
        "endpoint_public_access  = true",
        "public API endpoint",
    ),
    "iam": ("iam.tf", 'values   = ["sts.amazonaws.com"]', 'values   = ["*"]', "audience"),
    "iam-wildcard": ("iam.tf", '"s3:PutObject", "s3:DeleteObject"', '"s3:*"', "wildcard action"),
    "kms_logs": (
        "kms.tf",
        "enable_key_rotation     = true",
        "enable_key_rotation     = false",
        "rotation off",
    ),
}


@pytest.mark.parametrize("name", BREAKS)
def test_terraform_property_fails_on_broken_copy(name, tmp_path: Path) -> None:
    file, old, new, expected = BREAKS[name]
    shutil.copytree(TF, tmp_path / "tf")
    path = tmp_path / "tf" / file
    text = path.read_text()
    assert old in text, f"{file} no longer contains {old!r}: update the broken copy"
    path.write_text(text.replace(old, new))
    broken = Tree(tmp_path / "tf")
    findings = [f for check in FAMILIES.values() for f in check(broken)]
    assert any(expected in f for f in findings), findings


def test_irsa_roles_and_namespaces_match_the_overlays(tree) -> None:
    accounts = set(tree.locals["service_accounts"])
    ns_expr = tree.locals["namespace"]
    for env in ("staging", "prod"):
        kust = yaml.safe_load((ROOT / "manifests/overlays" / env / "kustomization.yaml").read_text())
        annotated = {
            p["target"]["name"].removeprefix("creditops-")
            for p in kust["patches"]
            if p["target"]["kind"] == "ServiceAccount"
        }
        assert annotated == accounts
        for p in kust["patches"]:
            if p["target"]["kind"] == "ServiceAccount":
                sa = p["target"]["name"].removeprefix("creditops-")
                assert f"role/creditops-{env}-{sa}" in p["patch"]
        expected_ns = "creditops" if env == "prod" else f"creditops-{env}"
        assert kust["namespace"] == expected_ns
        assert '"prod" ? "creditops"' in ns_expr
        managed = (ROOT / "manifests/overlays" / env / "managed-services.yaml").read_text()
        assert f"postgres.{env}.creditops.internal" in managed
    assert tree.of("aws_iam_role")["irsa"]["name"] == "${local.name}-${each.key}"
    assert tree.locals["name"] == "creditops-${var.environment}"


def test_every_environment_has_tfvars_and_a_backend(tree) -> None:
    for env in ENVS:
        assert tree.tfvars[env]["environment"] == env
        backend = (TF / "envs" / f"{env}.backend.hcl").read_text()
        assert "encrypt        = true" in backend and f"{env}.tfstate" in backend


TF_FMT = ROOT / ".venv-checkov" / "bin" / "python"


@pytest.mark.skipif(not TF_FMT.exists(), reason="tools venv not built: `make static` builds .venv-checkov")
def test_terraform_fmt_clean_and_fails_on_misformatted_copy(tmp_path: Path) -> None:
    ok = subprocess.run(
        [str(TF_FMT), "tools/tf_fmt.py", "terraform"], cwd=ROOT, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    shutil.copytree(TF, tmp_path / "tf")
    rds = tmp_path / "tf" / "rds.tf"
    rds.write_text(rds.read_text().replace('  engine         = "postgres"', '  engine = "postgres"'))
    bad = subprocess.run(
        [str(TF_FMT), "tools/tf_fmt.py", str(tmp_path / "tf")], cwd=ROOT, capture_output=True, text=True
    )
    assert bad.returncode != 0 and "rds.tf" in bad.stdout
    assert 'engine = "postgres"' in rds.read_text()  # checked, never rewritten
