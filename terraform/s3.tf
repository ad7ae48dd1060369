# S3: artefacts (pipeline outputs, Feast registry, access logs target) and the model registry (MLflow
# artefacts: every model bundle). Versioned, SSE-KMS with bucket keys, all public access blocked, owner-
# enforced ACLs, TLS-only bucket policy, access logs, and noncurrent versions expired after a retention.
locals {
  buckets = {
    artifacts      = "${local.name}-artifacts"
    model_registry = "${local.name}-model-registry"
  }
}

resource "aws_s3_bucket" "access_logs" {
  #checkov:skip=CKV2_AWS_62:nothing consumes object events of the access-log bucket
  #checkov:skip=CKV_AWS_144:single-region platform; versioning + lifecycle cover recovery, cross-region DR is decided outside this module
  #checkov:skip=CKV_AWS_18:this is the access-log target itself (logging it to itself would loop)
  bucket = "${local.name}-s3-access-logs"
}

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV2_AWS_62:no consumer of object events (pipelines and MLflow write and read through their own APIs)
  #checkov:skip=CKV_AWS_144:single-region platform; versioning + lifecycle cover recovery, cross-region DR is decided outside this module
  for_each = local.buckets

  bucket = each.value
}

locals {
  all_buckets = merge({ for k, b in aws_s3_bucket.this : k => b }, { access_logs = aws_s3_bucket.access_logs })
}

resource "aws_s3_bucket_versioning" "this" {
  for_each = local.all_buckets

  bucket = each.value.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = local.all_buckets

  bucket = each.value.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.this["s3"].arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each = local.all_buckets

  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = local.all_buckets

  bucket = each.value.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_logging" "this" {
  for_each = aws_s3_bucket.this

  bucket        = each.value.id
  target_bucket = aws_s3_bucket.access_logs.id
  target_prefix = "${each.key}/"
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  for_each = local.all_buckets

  bucket = each.value.id

  rule {
    id     = "noncurrent-and-multipart"
    status = "Enabled"
    filter {}

    noncurrent_version_expiration {
      # Model bundles back the audit log's answers: keep old versions for the regulatory period.
      noncurrent_days = each.key == "model_registry" ? 2555 : 365
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

data "aws_iam_policy_document" "tls_only" {
  for_each = local.all_buckets

  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      each.value.arn,
      "${each.value.arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  for_each = local.all_buckets

  bucket = each.value.id
  policy = data.aws_iam_policy_document.tls_only[each.key].json

  depends_on = [aws_s3_bucket_public_access_block.this]
}
