bucket         = "creditops-terraform-state-prod"
key            = "creditops/prod.tfstate"
region         = "eu-west-1"
encrypt        = true
dynamodb_table = "creditops-terraform-locks"
