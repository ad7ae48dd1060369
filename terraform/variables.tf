variable "environment" {
  description = "Environment name: dev, staging or prod (part of every resource name)."
  type        = string

  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be dev, staging or prod."
  }
}

variable "region" {
  description = "AWS region."
  type        = string
  default     = "eu-west-1"
}

variable "vpc_id" {
  description = "VPC the platform runs in (networking is owned outside this module)."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets (at least two AZs) for EKS nodes, RDS and ElastiCache."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) >= 2
    error_message = "private_subnet_ids needs subnets in at least two availability zones."
  }
}

variable "eks_version" {
  description = "EKS Kubernetes version."
  type        = string
  default     = "1.32"
}

variable "eks_admin_cidrs" {
  description = "CIDRs allowed to the EKS API endpoint (private endpoint only; kept for VPN ranges)."
  type        = list(string)
  default     = []
}

variable "node_groups" {
  description = "EKS managed node groups: instance types and scaling bounds."
  type = map(object({
    instance_types = list(string)
    min_size       = number
    desired_size   = number
    max_size       = number
    disk_size_gb   = number
    labels         = map(string)
  }))
}

variable "rds_instance_class" {
  description = "RDS instance class of the Postgres instance (offline store, MLflow, audit log)."
  type        = string
}

variable "rds_allocated_storage_gb" {
  description = "Initial RDS storage (autoscaling up to rds_max_storage_gb)."
  type        = number
  default     = 50
}

variable "rds_max_storage_gb" {
  description = "RDS storage autoscaling ceiling."
  type        = number
  default     = 500
}

variable "rds_multi_az" {
  description = "Standby in a second AZ (required in prod: see the validation in rds.tf)."
  type        = bool
  default     = true
}

variable "rds_backup_retention_days" {
  description = "Automated backup retention (point-in-time recovery window)."
  type        = number
  default     = 14

  validation {
    condition     = var.rds_backup_retention_days >= 7
    error_message = "rds_backup_retention_days must be at least 7."
  }
}

variable "redis_node_type" {
  description = "ElastiCache node type of the online store."
  type        = string
}

variable "redis_replicas" {
  description = "Read replicas per shard (>= 1 gives automatic failover)."
  type        = number
  default     = 1
}

variable "log_retention_days" {
  description = "CloudWatch log retention."
  type        = number
  default     = 365
}

variable "alarm_email" {
  description = "Address subscribed to the alarm topic (empty: no subscription)."
  type        = string
  default     = ""
}
