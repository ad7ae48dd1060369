bucket         = "creditops-terraform-state-dev"
key            = "creditops/dev.tfstate"
region         = "eu-west-1"
encrypt        = true
dynamodb_table = "creditops-terraform-locks"
