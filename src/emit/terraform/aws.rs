//! Amazon EKS: the cluster and its IAM role, a managed node group (Spot capacity when
//! `cluster.spot`) and its IAM role, a KMS key that encrypts Kubernetes Secrets and the
//! control-plane logs, the VPC CNI add-on with NetworkPolicy enforcement on (weave's agents rely on
//! NetworkPolicy for default deny), and the Route 53 record of the SPIRE bundle endpoint.
//!
//! The user brings the network: private subnets in at least two Availability Zones (`subnet_ids`).
//! Pods take their addresses from those subnets (VPC CNI).

use hcl::expr::Expression;

use super::{
    Module, Output, SiteFacts, Variable, api_allowed_cidrs_variable, api_public, body, call, conditional,
    count_when_set, data, interpolate, limited_name, list, load_balancer_address_variable, local, locals,
    nested, object, one_of, reference, resource, strings, template, text, types, var,
};

pub(super) const PROVIDER_VERSION: &str = ">= 5.80, < 7.0";

/// The managed policies EKS nodes need, by the resource name of their attachment.
pub(super) const NODE_POLICIES: [(&str, &str); 3] = [
    ("node_amazon_eks_worker_node_policy", "AmazonEKSWorkerNodePolicy"),
    ("node_amazon_eks_cni_policy", "AmazonEKS_CNI_Policy"),
    ("node_amazon_ec2_container_registry_read_only", "AmazonEC2ContainerRegistryReadOnly"),
];

/// Every control-plane log type EKS can send to CloudWatch.
const CONTROL_PLANE_LOGS: [&str; 5] = ["api", "audit", "authenticator", "controllerManager", "scheduler"];

/// Days the control-plane logs are kept.
const LOG_RETENTION_DAYS: u32 = 365;

pub(super) fn cluster(facts: &SiteFacts<'_>, module: &mut Module) {
    let cluster_name = facts.cluster_name();
    let region = facts.region();
    module.require_provider("aws", "hashicorp/aws", PROVIDER_VERSION);
    module.provider(
        nested("provider")
            .add_label("aws")
            .add_attribute(("region", region))
            .add_block(nested("default_tags").add_attribute(("tags", facts.labels_object())).build())
            .build(),
    );

    module.variable(
        Variable::new(
            "subnet_ids",
            types::list_of_strings(),
            "Private subnets, in at least two Availability Zones, for the EKS control-plane network \
             interfaces and the nodes. Pods take their addresses from these subnets (VPC CNI), and the \
             nodes need outbound internet access (a NAT gateway) to pull images.",
        )
        .validation(
            super::binary(
                call("length", [var("subnet_ids")]),
                hcl::expr::BinaryOperator::GreaterEq,
                2.into(),
            ),
            "EKS needs subnets in at least two Availability Zones.",
        ),
    );
    module.variable(api_allowed_cidrs_variable(
        "CIDR blocks allowed to reach the EKS public API endpoint. An empty list turns the public \
         endpoint off: the API is then reachable only from inside the VPC (or over the VPN).",
        false,
    ));

    module.main(data("aws_partition", "current", body()));
    module.main(data("aws_caller_identity", "current", body()));

    iam_roles(cluster_name, module);
    secrets_key(cluster_name, region, module);

    module.main(resource(
        "aws_cloudwatch_log_group",
        "cluster",
        body()
            .add_attribute(("name", log_group_name(cluster_name)))
            .add_attribute(("retention_in_days", LOG_RETENTION_DAYS))
            .add_attribute(("kms_key_id", reference("aws_kms_key.secrets.arn"))),
    ));

    let public_endpoint = api_public("api_allowed_cidrs");
    module.main(resource(
        "aws_eks_cluster",
        "this",
        body()
            .add_attribute(("name", cluster_name))
            .add_attribute(("version", facts.kubernetes_minor_version()))
            .add_attribute(("role_arn", reference("aws_iam_role.cluster.arn")))
            .add_attribute(("enabled_cluster_log_types", strings(CONTROL_PLANE_LOGS)))
            .add_block(
                nested("access_config")
                    .add_attribute(("authentication_mode", "API"))
                    .add_attribute(("bootstrap_cluster_creator_admin_permissions", true))
                    .build(),
            )
            .add_block(
                nested("vpc_config")
                    .add_attribute(("subnet_ids", var("subnet_ids")))
                    .add_attribute(("endpoint_private_access", true))
                    .add_attribute(("endpoint_public_access", public_endpoint.clone()))
                    .add_attribute((
                        "public_access_cidrs",
                        conditional(public_endpoint, var("api_allowed_cidrs"), Expression::Null),
                    ))
                    .build(),
            )
            .add_block(
                nested("encryption_config")
                    .add_attribute(("resources", strings(["secrets"])))
                    .add_block(
                        nested("provider")
                            .add_attribute(("key_arn", reference("aws_kms_key.secrets.arn")))
                            .build(),
                    )
                    .build(),
            )
            .add_attribute((
                "depends_on",
                list([
                    reference("aws_iam_role_policy_attachment.cluster_amazon_eks_cluster_policy"),
                    reference("aws_cloudwatch_log_group.cluster"),
                ]),
            )),
    ));

    // weave's Kubernetes manifests start from a default-deny NetworkPolicy; the VPC CNI enforces
    // NetworkPolicy only when asked to.
    module.main(resource(
        "aws_eks_addon",
        "vpc_cni",
        body()
            .add_attribute(("cluster_name", reference("aws_eks_cluster.this.name")))
            .add_attribute(("addon_name", "vpc-cni"))
            .add_attribute((
                "configuration_values",
                call("jsonencode", [object([("enableNetworkPolicy", Expression::from("true"))])]),
            ))
            .add_attribute(("resolve_conflicts_on_create", "OVERWRITE"))
            .add_attribute(("resolve_conflicts_on_update", "OVERWRITE")),
    ));

    let nodes = facts.site.cluster.nodes;
    module.main(resource(
        "aws_eks_node_group",
        "this",
        body()
            .add_attribute(("cluster_name", reference("aws_eks_cluster.this.name")))
            .add_attribute(("node_group_name", limited_name(cluster_name, "nodes", 63)))
            .add_attribute(("node_role_arn", reference("aws_iam_role.node.arn")))
            .add_attribute(("subnet_ids", var("subnet_ids")))
            .add_attribute(("capacity_type", if facts.site.cluster.spot { "SPOT" } else { "ON_DEMAND" }))
            .add_attribute(("instance_types", strings([facts.node_type()])))
            .add_block(
                nested("scaling_config")
                    .add_attribute(("desired_size", nodes))
                    .add_attribute(("min_size", nodes))
                    .add_attribute(("max_size", nodes))
                    .build(),
            )
            .add_block(nested("update_config").add_attribute(("max_unavailable", 1)).build())
            .add_attribute((
                "depends_on",
                list(
                    NODE_POLICIES
                        .iter()
                        .map(|(name, _)| super::attribute_of("aws_iam_role_policy_attachment", name, &[])),
                ),
            )),
    ));

    module.output(Output::new(
        "cluster_name",
        "Name of the EKS cluster.",
        reference("aws_eks_cluster.this.name"),
    ));
    module.output(Output::new(
        "cluster_endpoint",
        "URL of the Kubernetes API server.",
        reference("aws_eks_cluster.this.endpoint"),
    ));
    module.output(Output::new(
        "cluster_certificate_authority_data",
        "Base64-encoded certificate of the cluster's certificate authority.",
        reference("aws_eks_cluster.this.certificate_authority[0].data"),
    ));
    module.output(Output::new(
        "kubeconfig_command",
        "Writes a kubeconfig entry for the cluster.",
        template([
            text("aws eks update-kubeconfig --region "),
            text(region),
            text(" --name "),
            interpolate(reference("aws_eks_cluster.this.name")),
        ]),
    ));

    if let Some(host) = facts.bundle_endpoint_host() {
        bundle_endpoint_record(host, facts, module);
    }
}

fn iam_roles(cluster_name: &str, module: &mut Module) {
    module.main(data(
        "aws_iam_policy_document",
        "cluster_assume_role",
        body().add_block(assume_role_statement("eks.amazonaws.com", &["sts:AssumeRole", "sts:TagSession"])),
    ));
    module.main(resource(
        "aws_iam_role",
        "cluster",
        body().add_attribute(("name", limited_name(cluster_name, "cluster", 64))).add_attribute((
            "assume_role_policy",
            reference("data.aws_iam_policy_document.cluster_assume_role.json"),
        )),
    ));
    module.main(policy_attachment("cluster_amazon_eks_cluster_policy", "cluster", "AmazonEKSClusterPolicy"));

    module.main(data(
        "aws_iam_policy_document",
        "node_assume_role",
        body().add_block(assume_role_statement("ec2.amazonaws.com", &["sts:AssumeRole"])),
    ));
    module.main(resource(
        "aws_iam_role",
        "node",
        body().add_attribute(("name", limited_name(cluster_name, "node", 64))).add_attribute((
            "assume_role_policy",
            reference("data.aws_iam_policy_document.node_assume_role.json"),
        )),
    ));
    for (name, policy) in NODE_POLICIES {
        module.main(policy_attachment(name, "node", policy));
    }
}

fn assume_role_statement(service: &str, actions: &[&str]) -> hcl::Block {
    nested("statement")
        .add_attribute(("effect", "Allow"))
        .add_attribute(("actions", strings(actions)))
        .add_block(
            nested("principals")
                .add_attribute(("type", "Service"))
                .add_attribute(("identifiers", strings([service])))
                .build(),
        )
        .build()
}

fn policy_attachment(name: &str, role: &str, policy: &str) -> hcl::Block {
    resource(
        "aws_iam_role_policy_attachment",
        name,
        body().add_attribute(("role", super::attribute_of("aws_iam_role", role, &["name"]))).add_attribute((
            "policy_arn",
            template([
                text("arn:"),
                interpolate(reference("data.aws_partition.current.partition")),
                text(":iam::aws:policy/"),
                text(policy),
            ]),
        )),
    )
}

/// The KMS key for envelope encryption of Secrets and for the control-plane log group. Its policy
/// keeps the account in control (the AWS default) and lets CloudWatch Logs use it for this
/// cluster's log group only.
fn secrets_key(cluster_name: &str, region: &str, module: &mut Module) {
    let account_root = template([
        text("arn:"),
        interpolate(reference("data.aws_partition.current.partition")),
        text(":iam::"),
        interpolate(reference("data.aws_caller_identity.current.account_id")),
        text(":root"),
    ]);
    let log_group_arn = template([
        text("arn:"),
        interpolate(reference("data.aws_partition.current.partition")),
        text(":logs:"),
        text(region),
        text(":"),
        interpolate(reference("data.aws_caller_identity.current.account_id")),
        text(":log-group:"),
        text(log_group_name(cluster_name)),
    ]);
    // The key policy is written as data for jsonencode rather than as an aws_iam_policy_document:
    // a key policy's Resource "*" means "this key", which IAM-policy linters would read as any
    // resource.
    module.main(locals([
        (
            "secrets_key_administration",
            object([
                ("Sid", Expression::from("AccountAdministration")),
                ("Effect", "Allow".into()),
                ("Principal", object([("AWS", account_root)])),
                ("Action", "kms:*".into()),
                ("Resource", "*".into()),
            ]),
        ),
        (
            "secrets_key_control_plane_logs",
            object([
                ("Sid", Expression::from("ControlPlaneLogs")),
                ("Effect", "Allow".into()),
                (
                    "Principal",
                    object([("Service", template([text("logs."), text(region), text(".amazonaws.com")]))]),
                ),
                (
                    "Action",
                    strings([
                        "kms:Decrypt*",
                        "kms:Describe*",
                        "kms:Encrypt*",
                        "kms:GenerateDataKey*",
                        "kms:ReEncrypt*",
                    ]),
                ),
                ("Resource", "*".into()),
                (
                    "Condition",
                    object([("ArnEquals", object([("kms:EncryptionContext:aws:logs:arn", log_group_arn)]))]),
                ),
            ]),
        ),
    ]));
    module.main(resource(
        "aws_kms_key",
        "secrets",
        body()
            .add_attribute((
                "description",
                template([
                    text("Kubernetes Secrets and control-plane logs of EKS cluster "),
                    text(cluster_name),
                ]),
            ))
            .add_attribute(("enable_key_rotation", true))
            .add_attribute(("deletion_window_in_days", 30))
            .add_attribute((
                "policy",
                call(
                    "jsonencode",
                    [object([
                        ("Version", Expression::from("2012-10-17")),
                        (
                            "Statement",
                            list([
                                local("secrets_key_administration"),
                                local("secrets_key_control_plane_logs"),
                            ]),
                        ),
                    ])],
                ),
            )),
    ));
    module.main(resource(
        "aws_kms_alias",
        "secrets",
        body()
            .add_attribute(("name", template([text("alias/"), text(cluster_name), text("-secrets")])))
            .add_attribute(("target_key_id", reference("aws_kms_key.secrets.key_id"))),
    ));
}

/// The log group EKS writes control-plane logs to; EKS fixes its name.
fn log_group_name(cluster_name: &str) -> String {
    ["/aws/eks/", cluster_name, "/cluster"].concat()
}

/// A CNAME from the bundle endpoint's host name to the LoadBalancer Kubernetes creates for the
/// SPIRE bundle endpoint Service. That host name exists only once the cluster runs, so the record
/// is created on the apply after `bundle_endpoint_load_balancer_hostname` is set.
fn bundle_endpoint_record(host: &str, facts: &SiteFacts<'_>, module: &mut Module) {
    module.variable(Variable::new(
        "route53_zone_id",
        types::string(),
        "ID of the Route 53 hosted zone that holds the SPIRE bundle endpoint's host name.",
    ));
    module.variable(load_balancer_address_variable(
        "bundle_endpoint_load_balancer_hostname",
        "Host name of the LoadBalancer",
        facts,
    ));
    module.main(resource(
        "aws_route53_record",
        "bundle_endpoint",
        body()
            .add_attribute(("count", count_when_set("bundle_endpoint_load_balancer_hostname")))
            .add_attribute(("zone_id", var("route53_zone_id")))
            .add_attribute(("name", host))
            .add_attribute(("type", "CNAME"))
            .add_attribute(("ttl", 300))
            .add_attribute(("records", list([var("bundle_endpoint_load_balancer_hostname")]))),
    ));
    module.output(Output::new(
        "bundle_endpoint_dns_name",
        "DNS name of the SPIRE bundle endpoint (null until its record exists).",
        one_of("aws_route53_record", "bundle_endpoint", "fqdn"),
    ));
}
