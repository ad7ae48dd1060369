# dev: terraform plan -var-file=envs/dev.tfvars (after terraform init -backend-config=envs/dev.backend.hcl)
environment = "dev"
region      = "eu-west-1"

# Networking is owned outside this module: set the VPC and its private subnets of the dev account.
vpc_id             = "vpc-REPLACE_ME"
private_subnet_ids = ["subnet-REPLACE_ME_A", "subnet-REPLACE_ME_B", "subnet-REPLACE_ME_C"]

node_groups = {
  general = {
    instance_types = ["m6i.large"]
    min_size       = 1
    desired_size   = 2
    max_size       = 3
    disk_size_gb   = 50
    labels         = { "creditops.io/pool" = "general" }
  }
}

rds_instance_class        = "db.t4g.medium"
rds_multi_az              = false
rds_backup_retention_days = 7
redis_node_type           = "cache.t4g.small"
redis_replicas            = 0
