# IAM: the EKS cluster and node roles, and one IRSA role per workload service account
# (system:serviceaccount:<namespace>:creditops-<name>), each limited to the buckets and keys it needs.
data "aws_iam_policy_document" "eks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["eks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "eks_cluster" {
  name               = "${local.name}-eks-cluster"
  assume_role_policy = data.aws_iam_policy_document.eks_assume.json
}

resource "aws_iam_role_policy_attachment" "eks_cluster" {
  role       = aws_iam_role.eks_cluster.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonEKSClusterPolicy"
}

data "aws_iam_policy_document" "node_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "eks_node" {
  name               = "${local.name}-eks-node"
  assume_role_policy = data.aws_iam_policy_document.node_assume.json
}

resource "aws_iam_role_policy_attachment" "eks_node" {
  for_each = toset(["AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly"])

  role       = aws_iam_role.eks_node.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/${each.value}"
}

data "aws_iam_policy_document" "irsa_assume" {
  for_each = toset(local.service_accounts)

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [aws_iam_openid_connect_provider.eks.arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${replace(aws_iam_openid_connect_provider.eks.url, "https://", "")}:sub"
      values   = ["system:serviceaccount:${local.namespace}:creditops-${each.key}"]
    }
    condition {
      test     = "StringEquals"
      variable = "${replace(aws_iam_openid_connect_provider.eks.url, "https://", "")}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "irsa" {
  for_each = toset(local.service_accounts)

  name               = "${local.name}-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.irsa_assume[each.key].json
}

locals {
  # Which bucket each workload may read (R) or read+write (RW); the controller needs no S3 at all.
  s3_access = {
    predictor = { read = ["model_registry"], write = [] }
    mlflow    = { read = ["model_registry", "artifacts"], write = ["model_registry", "artifacts"] }
    feast     = { read = ["artifacts"], write = [] }
    pipeline  = { read = ["artifacts", "model_registry"], write = ["artifacts"] }
  }
}

data "aws_iam_policy_document" "irsa_s3" {
  for_each = local.s3_access

  statement {
    sid       = "List"
    actions   = ["s3:ListBucket"]
    resources = [for b in distinct(concat(each.value.read, each.value.write)) : aws_s3_bucket.this[b].arn]
  }

  statement {
    sid       = "Read"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = [for b in each.value.read : "${aws_s3_bucket.this[b].arn}/*"]
  }

  dynamic "statement" {
    for_each = length(each.value.write) > 0 ? [1] : []
    content {
      sid       = "Write"
      actions   = ["s3:PutObject", "s3:DeleteObject"]
      resources = [for b in each.value.write : "${aws_s3_bucket.this[b].arn}/*"]
    }
  }

  statement {
    sid       = "Kms"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.this["s3"].arn]
  }
}

resource "aws_iam_role_policy" "irsa_s3" {
  for_each = local.s3_access

  name   = "s3"
  role   = aws_iam_role.irsa[each.key].id
  policy = data.aws_iam_policy_document.irsa_s3[each.key].json
}
