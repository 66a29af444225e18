//! Amazon EKS: the cluster and its IAM role, access entries for the administrators, an on-demand
//! managed node group for the mesh's control plane and, when `cluster.spot`, a tainted Spot node
//! group for the agents (both with one node IAM role), a KMS key that encrypts Kubernetes Secrets
//! and the control-plane logs, the VPC CNI add-on with NetworkPolicy enforcement on (weave's agents
//! rely on NetworkPolicy for default deny), and the Route 53 record of the SPIRE bundle endpoint.
//!
//! What the site's manifests need from AWS is provisioned here rather than by EKS Auto Mode:
//! the EBS CSI driver add-on and a default encrypted gp3 StorageClass (EKS has had no default class
//! since 1.30, and the SPIRE server's volume claim names none), and the AWS Load Balancer
//! Controller (Helm) that serves the bundle endpoint Service's `aws-load-balancer-type: external`
//! NLB. Auto Mode would bring both, but it replaces managed node groups by its own Karpenter
//! NodePools (custom resources outside Terraform's schema checks), charges per instance on top of
//! EC2, and keeps nothing of this module's node setup the same as on the other clouds. Every pod
//! that calls an AWS API gets its role through EKS Pod Identity (the add-on
//! `eks-pod-identity-agent`, one association per ServiceAccount): the EBS CSI controller, the load
//! balancer controller and, with `aws_iid`, the SPIRE server (ec2:DescribeInstances,
//! iam:GetInstanceProfile). Pod Identity needs no OIDC provider and no ServiceAccount annotation.
//!
//! The user brings the network: private subnets in at least two Availability Zones (`subnet_ids`)
//! and the public subnets for the internet-facing NLB (`public_subnet_ids`, tagged here for the
//! load balancer controller's subnet discovery). Pods take their addresses from the private subnets
//! (VPC CNI).

use hcl::expr::Expression;

use super::{
    Module, Output, SiteFacts, Variable, api_allowed_cidrs_variable, api_public, body, call, conditional,
    count_when_set, data, interpolate, limited_name, list, load_balancer_address_variable, local, locals,
    nested, object, one_of, reference, resource, strings, template, text, types, var,
};

/// The release line the provider-schema check covers (hashicorp/aws 6.25).
pub(super) const PROVIDER_VERSION: &str = "~> 6.25";

/// `hashicorp/helm` 3.x, for the AWS Load Balancer Controller (`kubernetes = { ... }` in the
/// provider block is the 3.x form).
const HELM_PROVIDER_VERSION: &str = "~> 3.0";

/// The taint of the Spot node group: EKS labels Spot nodes `eks.amazonaws.com/capacityType=SPOT`,
/// and the agents of a spot site tolerate exactly that key and value.
pub(super) const SPOT_TAINT: (&str, &str) = ("eks.amazonaws.com/capacityType", "SPOT");

/// The chart version of the AWS Load Balancer Controller (controller v2.14.0), the default of
/// `load_balancer_controller_chart_version`.
const LOAD_BALANCER_CONTROLLER_CHART_VERSION: &str = "1.14.0";

/// Namespace and ServiceAccount of the AWS Load Balancer Controller.
const LOAD_BALANCER_CONTROLLER_ACCOUNT: (&str, &str) = ("kube-system", "aws-load-balancer-controller");

/// The ServiceAccount of the EBS CSI driver's controller (the add-on's fixed name).
const EBS_CSI_SERVICE_ACCOUNT: &str = "ebs-csi-controller-sa";

/// The default StorageClass this module creates.
pub(super) const STORAGE_CLASS: &str = "gp3";

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

/// The VPC CNI add-on's configuration: NetworkPolicy enforcement, and with VPN or peering links
/// the peers' ranges in `AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS`, so that the CNI does not translate
/// pod addresses to the node's for them: the callee's NetworkPolicy admits the caller's pod range,
/// not the node's address, and the peers route the pod ranges back over the links.
fn vpc_cni_configuration(facts: &SiteFacts<'_>) -> Expression {
    let plan = &facts.context.plan.vpn;
    let sites = &facts.context.topology.sites;
    let mut peers: Vec<usize> =
        plan.ipsec_links_of(facts.index).map(|link| link.peer_of(facts.index)).collect();
    for (left, right) in plan.links(crate::plan::vpn::LinkKind::VpcPeering) {
        if left == facts.index {
            peers.push(right);
        } else if right == facts.index {
            peers.push(left);
        }
    }
    let mut ranges: Vec<&str> = peers
        .iter()
        .flat_map(|&peer| {
            [sites[peer].cluster.pod_cidr.as_deref(), sites[peer].cluster.ingress_cidr.as_deref()]
        })
        .flatten()
        .collect();
    ranges.sort_unstable();
    ranges.dedup();
    let mut configuration = vec![("enableNetworkPolicy", Expression::from("true"))];
    if !ranges.is_empty() {
        configuration.push((
            "env",
            object([("AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS", Expression::from(ranges.join(",")))]),
        ));
    }
    object(configuration)
}

pub(super) fn cluster(facts: &SiteFacts<'_>, module: &mut Module) {
    let cluster_name = facts.cluster_name();
    let region = facts.region();
    module.require_provider("aws", "hashicorp/aws", PROVIDER_VERSION);
    module.require_provider("kubernetes", "hashicorp/kubernetes", super::KUBERNETES_PROVIDER_VERSION);
    module.require_provider("helm", "hashicorp/helm", HELM_PROVIDER_VERSION);
    module.backend("s3");
    module.provider(
        nested("provider")
            .add_label("aws")
            .add_attribute(("region", region))
            .add_block(nested("default_tags").add_attribute(("tags", facts.labels_object())).build())
            .build(),
    );
    // The cluster's API, for the StorageClass and the load balancer controller, with a token from
    // the AWS CLI: nothing long-lived in the state.
    let token_args = || {
        list([
            "eks".into(),
            "get-token".into(),
            "--cluster-name".into(),
            reference("aws_eks_cluster.this.name"),
            "--region".into(),
            region.into(),
        ])
    };
    const TOKEN_API: &str = "client.authentication.k8s.io/v1beta1";
    let host = reference("aws_eks_cluster.this.endpoint");
    let certificate = call("base64decode", [reference("aws_eks_cluster.this.certificate_authority[0].data")]);
    let kubernetes_provider = nested("provider")
        .add_label("kubernetes")
        .add_attribute(("host", host.clone()))
        .add_attribute(("cluster_ca_certificate", certificate.clone()))
        .add_block(
            nested("exec")
                .add_attribute(("api_version", TOKEN_API))
                .add_attribute(("command", "aws"))
                .add_attribute(("args", token_args()))
                .build(),
        );
    module.provider(kubernetes_provider.build());
    module.provider(
        nested("provider")
            .add_label("helm")
            .add_attribute((
                "kubernetes",
                object([
                    ("host", host),
                    ("cluster_ca_certificate", certificate),
                    (
                        "exec",
                        object([
                            ("api_version", Expression::from(TOKEN_API)),
                            ("command", "aws".into()),
                            ("args", token_args()),
                        ]),
                    ),
                ]),
            ))
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
        )
        .example(strings(["subnet-0f1e2d3c4b5a60001", "subnet-0f1e2d3c4b5a60002"])),
    );
    module.variable(
        api_allowed_cidrs_variable(
            "CIDR blocks allowed to reach the EKS public API endpoint. An empty list turns the public \
         endpoint off: the API is then reachable only from inside the VPC (or over the VPN).",
            false,
        )
        .example(strings(["203.0.113.0/24"])),
    );
    module.variable(
        Variable::new(
            "public_subnet_ids",
            types::list_of_strings(),
            "Public subnets (with a route to an internet gateway) of the cluster's VPC, one per \
             Availability Zone of subnet_ids, for the internet-facing NLB of the SPIRE bundle endpoint. \
             They are tagged kubernetes.io/role/elb = 1 for the AWS Load Balancer Controller's subnet \
             discovery.",
        )
        .example(strings(["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"]))
        .validation(
            super::binary(
                call("length", [var("public_subnet_ids")]),
                hcl::expr::BinaryOperator::Greater,
                0.into(),
            ),
            "An internet-facing NLB needs at least one public subnet.",
        ),
    );
    module.variable(
        Variable::new(
            "admin_principal_arns",
            types::list_of_strings(),
            "ARNs of the IAM roles and users that administer the cluster (an EKS access entry with \
             AmazonEKSClusterAdminPolicy each), besides the identity that creates it. [] leaves only \
             the creator.",
        )
        .example(strings(["arn:aws:iam::111122223333:role/platform-admin"])),
    );
    module.variable(
        Variable::new(
            "load_balancer_controller_chart_version",
            types::string(),
            "Version of the aws-load-balancer-controller Helm chart (https://aws.github.io/eks-charts).",
        )
        .default(LOAD_BALANCER_CONTROLLER_CHART_VERSION),
    );

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
    // NetworkPolicy only when asked to. With VPN links, see [`vpc_cni_configuration`].
    module.main(resource(
        "aws_eks_addon",
        "vpc_cni",
        body()
            .add_attribute(("cluster_name", reference("aws_eks_cluster.this.name")))
            .add_attribute(("addon_name", "vpc-cni"))
            .add_attribute(("configuration_values", call("jsonencode", [vpc_cni_configuration(facts)])))
            .add_attribute(("resolve_conflicts_on_create", "OVERWRITE"))
            .add_attribute(("resolve_conflicts_on_update", "OVERWRITE")),
    ));

    access_entries(module);
    node_groups(facts, module);
    pod_identity(facts, module);
    storage(module);
    load_balancer_controller(facts, module);

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

/// An access entry with cluster-wide AmazonEKSClusterAdminPolicy for each administrator.
fn access_entries(module: &mut Module) {
    let principals = call("toset", [var("admin_principal_arns")]);
    module.main(resource(
        "aws_eks_access_entry",
        "admin",
        body()
            .add_attribute(("for_each", principals.clone()))
            .add_attribute(("cluster_name", reference("aws_eks_cluster.this.name")))
            .add_attribute(("principal_arn", reference("each.value")))
            .add_attribute(("type", "STANDARD")),
    ));
    module.main(resource(
        "aws_eks_access_policy_association",
        "admin",
        body()
            .add_attribute(("for_each", principals))
            .add_attribute(("cluster_name", reference("aws_eks_cluster.this.name")))
            .add_attribute(("principal_arn", reference("aws_eks_access_entry.admin[each.key].principal_arn")))
            .add_attribute((
                "policy_arn",
                template([
                    text("arn:"),
                    interpolate(reference("data.aws_partition.current.partition")),
                    text(":eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"),
                ]),
            ))
            .add_block(nested("access_scope").add_attribute(("type", "cluster")).build()),
    ));
}

/// The on-demand node group of the mesh's control plane (every node when the site is not spot)
/// and, on a spot site, the Spot node group of the agents, tainted so that only pods tolerating
/// Spot capacity (the agents, the node-level DaemonSets) run there.
fn node_groups(facts: &SiteFacts<'_>, module: &mut Module) {
    let cluster_name = facts.cluster_name();
    let spot = facts.site.cluster.spot;
    let nodes = facts.site.cluster.nodes;
    let depends_on = || {
        list(
            NODE_POLICIES
                .iter()
                .map(|(name, _)| super::attribute_of("aws_iam_role_policy_attachment", name, &[]))
                .chain([reference("aws_eks_addon.vpc_cni")]),
        )
    };
    let group = |name: &str, size: u32, capacity: &str| {
        body()
            .add_attribute(("cluster_name", reference("aws_eks_cluster.this.name")))
            .add_attribute(("node_group_name", limited_name(cluster_name, name, 63)))
            .add_attribute(("node_role_arn", reference("aws_iam_role.node.arn")))
            .add_attribute(("subnet_ids", var("subnet_ids")))
            .add_attribute(("capacity_type", capacity))
            .add_attribute(("instance_types", strings([facts.node_type()])))
            .add_block(
                nested("scaling_config")
                    .add_attribute(("desired_size", size))
                    .add_attribute(("min_size", size))
                    .add_attribute(("max_size", size))
                    .build(),
            )
            .add_block(nested("update_config").add_attribute(("max_unavailable", 1)).build())
    };
    let system_nodes = if spot { super::SPOT_SITE_SYSTEM_NODES } else { nodes };
    module.main(resource(
        "aws_eks_node_group",
        "system",
        group("system", system_nodes, "ON_DEMAND").add_attribute(("depends_on", depends_on())),
    ));
    if spot {
        module.main(resource(
            "aws_eks_node_group",
            "spot",
            group("spot", nodes, "SPOT")
                .add_block(
                    nested("taint")
                        .add_attribute(("key", SPOT_TAINT.0))
                        .add_attribute(("value", SPOT_TAINT.1))
                        .add_attribute(("effect", "NO_SCHEDULE"))
                        .build(),
                )
                .add_attribute(("depends_on", depends_on())),
        ));
    }
}

/// The EKS Pod Identity agent, and a role per workload that calls an AWS API: the EBS CSI
/// controller (through its add-on), the load balancer controller and, when the SPIRE server attests
/// nodes with `aws_iid`, the SPIRE server.
fn pod_identity(facts: &SiteFacts<'_>, module: &mut Module) {
    let cluster_name = facts.cluster_name();
    module.main(resource(
        "aws_eks_addon",
        "pod_identity_agent",
        body()
            .add_attribute(("cluster_name", reference("aws_eks_cluster.this.name")))
            .add_attribute(("addon_name", "eks-pod-identity-agent"))
            .add_attribute(("resolve_conflicts_on_create", "OVERWRITE"))
            .add_attribute(("resolve_conflicts_on_update", "OVERWRITE"))
            .add_attribute(("depends_on", list([reference("aws_eks_node_group.system")]))),
    ));
    module.main(data(
        "aws_iam_policy_document",
        "pod_identity_assume_role",
        body().add_block(assume_role_statement(
            "pods.eks.amazonaws.com",
            &["sts:AssumeRole", "sts:TagSession"],
        )),
    ));
    let role = |name: &str, suffix: &str| {
        resource(
            "aws_iam_role",
            name,
            body().add_attribute(("name", limited_name(cluster_name, suffix, 64))).add_attribute((
                "assume_role_policy",
                reference("data.aws_iam_policy_document.pod_identity_assume_role.json"),
            )),
        )
    };

    module.main(role("ebs_csi", "ebs-csi"));
    module.main(resource(
        "aws_iam_role_policy_attachment",
        "ebs_csi",
        body().add_attribute(("role", reference("aws_iam_role.ebs_csi.name"))).add_attribute((
            "policy_arn",
            template([
                text("arn:"),
                interpolate(reference("data.aws_partition.current.partition")),
                text(":iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"),
            ]),
        )),
    ));

    module.main(role("load_balancer_controller", "lb-controller"));
    module.main(resource(
        "aws_iam_policy",
        "load_balancer_controller",
        body()
            .add_attribute(("name", limited_name(cluster_name, "lb-controller", 128)))
            .add_attribute(("description", "AWS Load Balancer Controller: NLBs for the cluster's Services"))
            .add_attribute(("policy", call("jsonencode", [load_balancer_controller_policy()]))),
    ));
    module.main(resource(
        "aws_iam_role_policy_attachment",
        "load_balancer_controller",
        body()
            .add_attribute(("role", reference("aws_iam_role.load_balancer_controller.name")))
            .add_attribute(("policy_arn", reference("aws_iam_policy.load_balancer_controller.arn"))),
    ));
    module.main(pod_identity_association(
        "load_balancer_controller",
        LOAD_BALANCER_CONTROLLER_ACCOUNT.0,
        LOAD_BALANCER_CONTROLLER_ACCOUNT.1,
    ));
}

/// The Pod Identity association of `namespace/service_account` with `aws_iam_role.<role>`.
fn pod_identity_association(role: &str, namespace: &str, service_account: &str) -> hcl::Block {
    resource(
        "aws_eks_pod_identity_association",
        role,
        body()
            .add_attribute(("cluster_name", reference("aws_eks_cluster.this.name")))
            .add_attribute(("namespace", namespace))
            .add_attribute(("service_account", service_account))
            .add_attribute(("role_arn", super::attribute_of("aws_iam_role", role, &["arn"])))
            .add_attribute(("depends_on", list([reference("aws_eks_addon.pod_identity_agent")]))),
    )
}

/// What the AWS Load Balancer Controller needs to run the NLBs of `type: LoadBalancer` Services:
/// read the network and load balancers, and create, change and delete only the load balancers,
/// target groups and security groups (of the cluster's VPC) it tagged with its cluster tag
/// (`elbv2.k8s.aws/cluster`). From the controller's reference policy, without what only Ingresses
/// (ALB rules, WAF, Shield, Cognito, certificates) use, and with every write action limited to the
/// resource types it acts on.
fn load_balancer_controller_policy() -> Expression {
    let statement = |actions: &[&str], resources: Expression, condition: Option<Expression>| {
        let mut fields = vec![
            ("Effect", Expression::from("Allow")),
            ("Action", strings(actions)),
            ("Resource", resources),
        ];
        if let Some(condition) = condition {
            fields.push(("Condition", condition));
        }
        object(fields)
    };
    let tag_null = |entries: &[(&str, &str)]| {
        object([("Null", object(entries.iter().map(|(key, value)| (*key, Expression::from(*value)))))])
    };
    const REQUEST_TAG: &str = "aws:RequestTag/elbv2.k8s.aws/cluster";
    const RESOURCE_TAG: &str = "aws:ResourceTag/elbv2.k8s.aws/cluster";
    let arn_list = |service: &str, paths: &[&str]| -> Vec<Expression> {
        paths
            .iter()
            .map(|path| {
                template([
                    text("arn:"),
                    interpolate(reference("data.aws_partition.current.partition")),
                    text(":"),
                    text(service),
                    text(":*:"),
                    interpolate(reference("data.aws_caller_identity.current.account_id")),
                    text(":"),
                    text(*path),
                ])
            })
            .collect()
    };
    let arns = |service: &str, paths: &[&str]| list(arn_list(service, paths));
    let security_groups = || arns("ec2", &["security-group/*"]);
    let load_balancers = || arns("elasticloadbalancing", &["loadbalancer/net/*/*", "loadbalancer/app/*/*"]);
    let target_groups = || arns("elasticloadbalancing", &["targetgroup/*/*"]);
    let balancers_and_groups =
        || arns("elasticloadbalancing", &["loadbalancer/net/*/*", "loadbalancer/app/*/*", "targetgroup/*/*"]);
    let listeners = || {
        arns(
            "elasticloadbalancing",
            &["loadbalancer/net/*/*", "loadbalancer/app/*/*", "listener/net/*/*/*", "listener/app/*/*/*"],
        )
    };
    let vpc = template([
        text("arn:"),
        interpolate(reference("data.aws_partition.current.partition")),
        text(":ec2:*:"),
        interpolate(reference("data.aws_caller_identity.current.account_id")),
        text(":vpc/"),
        interpolate(reference("data.aws_subnet.first.vpc_id")),
    ]);
    let mut create_security_group = vec![vpc];
    create_security_group.extend(arn_list("ec2", &["security-group/*"]));
    object([
        ("Version", Expression::from("2012-10-17")),
        (
            "Statement",
            list([
                statement(
                    &[
                        "ec2:DescribeAccountAttributes",
                        "ec2:DescribeAddresses",
                        "ec2:DescribeAvailabilityZones",
                        "ec2:DescribeInstances",
                        "ec2:DescribeInternetGateways",
                        "ec2:DescribeNetworkInterfaces",
                        "ec2:DescribeRouteTables",
                        "ec2:DescribeSecurityGroups",
                        "ec2:DescribeSubnets",
                        "ec2:DescribeTags",
                        "ec2:DescribeVpcs",
                        "elasticloadbalancing:DescribeListenerAttributes",
                        "elasticloadbalancing:DescribeListeners",
                        "elasticloadbalancing:DescribeLoadBalancerAttributes",
                        "elasticloadbalancing:DescribeLoadBalancers",
                        "elasticloadbalancing:DescribeTags",
                        "elasticloadbalancing:DescribeTargetGroupAttributes",
                        "elasticloadbalancing:DescribeTargetGroups",
                        "elasticloadbalancing:DescribeTargetHealth",
                    ],
                    Expression::from("*"),
                    None,
                ),
                statement(
                    &["iam:CreateServiceLinkedRole"],
                    list([template([
                        text("arn:"),
                        interpolate(reference("data.aws_partition.current.partition")),
                        text(":iam::"),
                        interpolate(reference("data.aws_caller_identity.current.account_id")),
                        text(":role/aws-service-role/elasticloadbalancing.amazonaws.com/*"),
                    ])]),
                    Some(object([(
                        "StringEquals",
                        object([(
                            "iam:AWSServiceName",
                            Expression::from("elasticloadbalancing.amazonaws.com"),
                        )]),
                    )])),
                ),
                statement(
                    &["ec2:CreateSecurityGroup", "ec2:GetSecurityGroupsForVpc"],
                    list(create_security_group),
                    None,
                ),
                statement(
                    &["ec2:CreateTags"],
                    security_groups(),
                    Some(object([
                        (
                            "StringEquals",
                            object([("ec2:CreateAction", Expression::from("CreateSecurityGroup"))]),
                        ),
                        ("Null", object([(REQUEST_TAG, Expression::from("false"))])),
                    ])),
                ),
                statement(
                    &["ec2:CreateTags", "ec2:DeleteTags"],
                    security_groups(),
                    Some(tag_null(&[(REQUEST_TAG, "true"), (RESOURCE_TAG, "false")])),
                ),
                statement(
                    &[
                        "ec2:AuthorizeSecurityGroupIngress",
                        "ec2:DeleteSecurityGroup",
                        "ec2:RevokeSecurityGroupIngress",
                    ],
                    security_groups(),
                    Some(tag_null(&[(RESOURCE_TAG, "false")])),
                ),
                statement(
                    &["elasticloadbalancing:CreateLoadBalancer"],
                    load_balancers(),
                    Some(tag_null(&[(REQUEST_TAG, "false")])),
                ),
                statement(
                    &["elasticloadbalancing:CreateTargetGroup"],
                    target_groups(),
                    Some(tag_null(&[(REQUEST_TAG, "false")])),
                ),
                statement(
                    &[
                        "elasticloadbalancing:CreateListener",
                        "elasticloadbalancing:DeleteListener",
                        "elasticloadbalancing:ModifyListener",
                        "elasticloadbalancing:ModifyListenerAttributes",
                    ],
                    listeners(),
                    None,
                ),
                statement(
                    &["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"],
                    balancers_and_groups(),
                    Some(tag_null(&[(REQUEST_TAG, "true"), (RESOURCE_TAG, "false")])),
                ),
                statement(
                    &["elasticloadbalancing:AddTags"],
                    balancers_and_groups(),
                    Some(object([
                        (
                            "StringEquals",
                            object([(
                                "elasticloadbalancing:CreateAction",
                                strings(["CreateLoadBalancer", "CreateTargetGroup"]),
                            )]),
                        ),
                        ("Null", object([(REQUEST_TAG, Expression::from("false"))])),
                    ])),
                ),
                statement(
                    &[
                        "elasticloadbalancing:DeleteLoadBalancer",
                        "elasticloadbalancing:DeleteTargetGroup",
                        "elasticloadbalancing:DeregisterTargets",
                        "elasticloadbalancing:ModifyLoadBalancerAttributes",
                        "elasticloadbalancing:ModifyTargetGroup",
                        "elasticloadbalancing:ModifyTargetGroupAttributes",
                        "elasticloadbalancing:RegisterTargets",
                        "elasticloadbalancing:SetIpAddressType",
                        "elasticloadbalancing:SetSecurityGroups",
                        "elasticloadbalancing:SetSubnets",
                    ],
                    balancers_and_groups(),
                    Some(tag_null(&[(RESOURCE_TAG, "false")])),
                ),
            ]),
        ),
    ])
}

/// The EBS CSI driver add-on (its controller's role through Pod Identity) and the default
/// StorageClass: encrypted gp3 volumes, bound where the pod is scheduled, expandable.
fn storage(module: &mut Module) {
    module.main(resource(
        "aws_eks_addon",
        "ebs_csi_driver",
        body()
            .add_attribute(("cluster_name", reference("aws_eks_cluster.this.name")))
            .add_attribute(("addon_name", "aws-ebs-csi-driver"))
            .add_attribute(("resolve_conflicts_on_create", "OVERWRITE"))
            .add_attribute(("resolve_conflicts_on_update", "OVERWRITE"))
            .add_block(
                nested("pod_identity_association")
                    .add_attribute(("role_arn", reference("aws_iam_role.ebs_csi.arn")))
                    .add_attribute(("service_account", EBS_CSI_SERVICE_ACCOUNT))
                    .build(),
            )
            .add_attribute((
                "depends_on",
                list([
                    reference("aws_eks_addon.pod_identity_agent"),
                    reference("aws_iam_role_policy_attachment.ebs_csi"),
                ]),
            )),
    ));
    module.main(resource(
        "kubernetes_storage_class_v1",
        "default",
        body()
            .add_block(
                nested("metadata")
                    .add_attribute(("name", STORAGE_CLASS))
                    .add_attribute((
                        "annotations",
                        object([("storageclass.kubernetes.io/is-default-class", Expression::from("true"))]),
                    ))
                    .build(),
            )
            .add_attribute(("storage_provisioner", "ebs.csi.aws.com"))
            .add_attribute(("reclaim_policy", "Delete"))
            .add_attribute(("volume_binding_mode", "WaitForFirstConsumer"))
            .add_attribute(("allow_volume_expansion", true))
            .add_attribute((
                "parameters",
                object([("type", Expression::from("gp3")), ("encrypted", "true".into())]),
            ))
            .add_attribute(("depends_on", list([reference("aws_eks_addon.ebs_csi_driver")]))),
    ));
}

/// The AWS Load Balancer Controller, which makes the NLB of the SPIRE bundle endpoint Service
/// (`aws-load-balancer-type: external`), and the subnet tags by which it finds the public subnets.
fn load_balancer_controller(facts: &SiteFacts<'_>, module: &mut Module) {
    module.main(resource(
        "aws_ec2_tag",
        "public_subnet_elb",
        body()
            .add_attribute(("for_each", call("toset", [var("public_subnet_ids")])))
            .add_attribute(("resource_id", reference("each.value")))
            .add_attribute(("key", "kubernetes.io/role/elb"))
            .add_attribute(("value", "1")),
    ));
    module.main(data(
        "aws_subnet",
        "first",
        body().add_attribute((
            "id",
            hcl::expr::Traversal::new(var("subnet_ids"), [hcl::expr::TraversalOperator::Index(0u64.into())]),
        )),
    ));
    let values = object([
        ("clusterName", reference("aws_eks_cluster.this.name")),
        ("region", facts.region().into()),
        ("vpcId", reference("data.aws_subnet.first.vpc_id")),
        (
            "serviceAccount",
            object([("create", Expression::from(true)), ("name", LOAD_BALANCER_CONTROLLER_ACCOUNT.1.into())]),
        ),
    ]);
    module.main(resource(
        "helm_release",
        "aws_load_balancer_controller",
        body()
            .add_attribute(("name", "aws-load-balancer-controller"))
            .add_attribute(("repository", "https://aws.github.io/eks-charts"))
            .add_attribute(("chart", "aws-load-balancer-controller"))
            .add_attribute(("version", var("load_balancer_controller_chart_version")))
            .add_attribute(("namespace", LOAD_BALANCER_CONTROLLER_ACCOUNT.0))
            .add_attribute(("values", list([call("yamlencode", [values])])))
            .add_attribute((
                "depends_on",
                list([
                    reference("aws_eks_pod_identity_association.load_balancer_controller"),
                    reference("aws_iam_role_policy_attachment.load_balancer_controller"),
                    reference("aws_eks_node_group.system"),
                    reference("aws_ec2_tag.public_subnet_elb"),
                ]),
            )),
    ));
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
    module.variable(
        Variable::new(
            "route53_zone_id",
            types::string(),
            "ID of the Route 53 hosted zone that holds the SPIRE bundle endpoint's host name.",
        )
        .example("Z0123456789ABCDEFGHIJ"),
    );
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
    module.output(super::bundle_endpoint_address_output(
        "hostname",
        "bundle_endpoint_load_balancer_hostname",
        facts,
    ));
    module.output(Output::new(
        "bundle_endpoint_dns_name",
        "DNS name of the SPIRE bundle endpoint (null until its record exists).",
        one_of("aws_route53_record", "bundle_endpoint", "fqdn"),
    ));
}
