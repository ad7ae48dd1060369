# prod: terraform plan -var-file=envs/prod.tfvars (after terraform init -backend-config=envs/prod.backend.hcl)
environment = "prod"
region      = "eu-west-1"

# Networking is owned outside this module: set the VPC and its private subnets of the prod account.
vpc_id             = "vpc-REPLACE_ME"
private_subnet_ids = ["subnet-REPLACE_ME_A", "subnet-REPLACE_ME_B", "subnet-REPLACE_ME_C"]

node_groups = {
  general = {
    instance_types = ["m6i.2xlarge"]
    min_size       = 3
    desired_size   = 3
    max_size       = 10
    disk_size_gb   = 50
    labels         = { "creditops.io/pool" = "general" }
  }
}

rds_instance_class        = "db.r6g.xlarge"
rds_multi_az              = true
rds_backup_retention_days = 35
redis_node_type           = "cache.r6g.large"
redis_replicas            = 2
