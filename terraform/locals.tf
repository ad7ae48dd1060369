locals {
  name = "creditops-${var.environment}"
  tags = {
    project     = "creditops"
    environment = var.environment
    managed_by  = "terraform"
  }
  # Kubernetes namespace of each environment (manifests/overlays/<env>).
  namespace = var.environment == "prod" ? "creditops" : "creditops-${var.environment}"
  # Workload identities: Kubernetes service account -> IAM role (IRSA), names match manifests/base.
  service_accounts = ["predictor", "mlflow", "feast", "pipeline", "controller"]
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}
