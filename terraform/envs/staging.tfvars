# staging: terraform plan -var-file=envs/staging.tfvars (after terraform init -backend-config=envs/staging.backend.hcl)
environment = "staging"
region      = "eu-west-1"

# Networking is owned outside this module: set the VPC and its private subnets of the staging account.
vpc_id             = "vpc-REPLACE_ME"
private_subnet_ids = ["subnet-REPLACE_ME_A", "subnet-REPLACE_ME_B", "subnet-REPLACE_ME_C"]

node_groups = {
  general = {
    instance_types = ["m6i.xlarge"]
    min_size       = 2
    desired_size   = 2
    max_size       = 4
    disk_size_gb   = 50
    labels         = { "creditops.io/pool" = "general" }
  }
}

rds_instance_class        = "db.m6g.large"
rds_multi_az              = false
rds_backup_retention_days = 7
redis_node_type           = "cache.m6g.large"
redis_replicas            = 1
