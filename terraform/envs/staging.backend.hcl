bucket         = "creditops-terraform-state-staging"
key            = "creditops/staging.tfstate"
region         = "eu-west-1"
encrypt        = true
dynamodb_table = "creditops-terraform-locks"
