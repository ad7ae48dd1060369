# Providers are pinned here and locked by `terraform init` in CI (GitHub Actions); this repository's
# machines cannot download providers, so only `terraform fmt -check`, checkov and the HCL tests run here.
terraform {
  required_version = ">= 1.6.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "5.82.2"
    }
    random = {
      source  = "hashicorp/random"
      version = "3.6.3"
    }
  }

  # Partial configuration: bucket, key, region and the lock table come from envs/<env>.backend.hcl.
  backend "s3" {}
}

provider "aws" {
  region = var.region

  default_tags {
    tags = local.tags
  }
}
