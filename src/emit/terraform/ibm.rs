//! IBM Cloud Kubernetes Service on VPC (`ibm_container_vpc_cluster`, the current kind; classic
//! `ibm_container_cluster` runs on the older classic infrastructure): the cluster with its default
//! worker pool spread over the zones given, the public service endpoint off unless asked for, and
//! the Cloud Internet Services record of the SPIRE bundle endpoint. IKS has no spot workers, so
//! `cluster.spot` has no effect here and the one worker pool is on demand. IKS runs Calico, which
//! enforces NetworkPolicy. Since 1.30, VPC clusters block outbound traffic to the internet by
//! default; the module turns that protection off (`disable_outbound_traffic_protection`), as the
//! nodes pull public images and reach the tailnet's control plane and the other trust domains'
//! bundle endpoints. IKS brings the rest the manifests need: a default StorageClass (VPC Block)
//! and VPC Network Load Balancers for `type: LoadBalancer` Services.
//!
//! The user brings the network: the VPC and one subnet per zone.

use hcl::expr::BinaryOperator;

use super::{
    Module, Output, SiteFacts, Variable, binary, body, call, count_when_set, data, dynamic, interpolate,
    load_balancer_address_variable, nested, not, one_of, reference, resource, strings, template, text, types,
    var,
};

pub(super) const PROVIDER_VERSION: &str = "~> 1.70";

pub(super) fn cluster(facts: &SiteFacts<'_>, module: &mut Module) {
    let cluster_name = facts.cluster_name();
    let region = facts.region();
    module.require_provider("ibm", "IBM-Cloud/ibm", PROVIDER_VERSION);
    // Cloud Object Storage through its S3-compatible API.
    module.backend("s3");
    module.provider(nested("provider").add_label("ibm").add_attribute(("region", region)).build());

    module.variable(
        Variable::new("resource_group_name", types::string(), "Resource group of the cluster.")
            .example("default"),
    );
    module.variable(
        Variable::new("vpc_id", types::string(), "ID of the VPC of the cluster.")
            .example("r006-01234567-89ab-cdef-0123-456789abcdef"),
    );
    module.variable(
        Variable::new(
            "worker_zones",
            types::list_of_objects(&[("name", types::string()), ("subnet_id", types::string())]),
            ["Zones of the worker pool (such as ", region, "-1) with the VPC subnet of each."].concat(),
        )
        .validation(
            binary(call("length", [var("worker_zones")]), BinaryOperator::Greater, 0.into()),
            "Give at least one zone.",
        )
        .example(super::list([super::object([
            ("name", hcl::expr::Expression::from([region, "-1"].concat())),
            ("subnet_id", "0717-01234567-89ab-cdef-0123-456789abcdef".into()),
        ])])),
    );
    module.variable(
        Variable::new(
            "public_service_endpoint_enabled",
            types::bool(),
            "Whether the Kubernetes API gets a public service endpoint. Off, it is reachable from the \
             VPC (and over the VPN) only.",
        )
        .default(false),
    );

    module.main(data(
        "ibm_resource_group",
        "this",
        body().add_attribute(("name", var("resource_group_name"))),
    ));

    let mut cluster = body()
        .add_attribute(("name", cluster_name))
        .add_attribute(("vpc_id", var("vpc_id")))
        .add_attribute(("resource_group_id", reference("data.ibm_resource_group.this.id")))
        .add_attribute(("kube_version", facts.kubernetes_version()))
        .add_attribute(("flavor", facts.node_type()))
        // worker_count is per zone: enough per zone for `nodes` in all.
        .add_attribute((
            "worker_count",
            call(
                "ceil",
                [binary(
                    facts.site.cluster.nodes.into(),
                    BinaryOperator::Div,
                    call("length", [var("worker_zones")]),
                )],
            ),
        ))
        .add_attribute(("disable_public_service_endpoint", not(var("public_service_endpoint_enabled"))))
        .add_attribute(("disable_outbound_traffic_protection", true))
        .add_attribute(("wait_till", "OneWorkerNodeReady"));
    if let Some(pod_cidr) = &facts.site.cluster.pod_cidr {
        cluster = cluster.add_attribute(("pod_subnet", pod_cidr.as_str()));
    }
    cluster = cluster
        .add_attribute((
            "tags",
            strings(facts.labels().iter().map(|(key, value)| [key, ":", value.as_str()].concat())),
        ))
        .add_block(dynamic(
            "zones",
            var("worker_zones"),
            nested("content")
                .add_attribute(("name", reference("zones.value.name")))
                .add_attribute(("subnet_id", reference("zones.value.subnet_id"))),
        ));
    module.main(resource("ibm_container_vpc_cluster", "this", cluster));

    module.output(Output::new(
        "cluster_id",
        "ID of the IKS cluster.",
        reference("ibm_container_vpc_cluster.this.id"),
    ));
    module.output(Output::new(
        "cluster_name",
        "Name of the IKS cluster.",
        reference("ibm_container_vpc_cluster.this.name"),
    ));
    module.output(Output::new(
        "cluster_endpoint",
        "URL of the Kubernetes API server.",
        reference("ibm_container_vpc_cluster.this.master_url"),
    ));
    module.output(Output::new(
        "kubeconfig_command",
        "Writes a kubeconfig entry for the cluster.",
        template([
            text("ibmcloud ks cluster config --cluster "),
            interpolate(reference("ibm_container_vpc_cluster.this.id")),
        ]),
    ));

    if let Some(host) = facts.bundle_endpoint_host() {
        bundle_endpoint_record(host, facts, module);
    }
}

/// A CNAME from the bundle endpoint's host name to the host name of the VPC load balancer
/// Kubernetes creates for the SPIRE bundle endpoint Service, created once that is known.
fn bundle_endpoint_record(host: &str, facts: &SiteFacts<'_>, module: &mut Module) {
    module.variable(Variable::new(
        "cis_id",
        types::string(),
        "ID of the Cloud Internet Services instance that serves the bundle endpoint's domain.",
    ).example("crn:v1:bluemix:public:internet-svcs:global:a/0123456789abcdef:01234567-89ab-cdef-0123-456789abcdef::"));
    module.variable(
        Variable::new(
            "cis_domain_id",
            types::string(),
            "ID of the Cloud Internet Services domain that holds the bundle endpoint's host name.",
        )
        .example("0123456789abcdef0123456789abcdef"),
    );
    module.variable(load_balancer_address_variable(
        "bundle_endpoint_load_balancer_hostname",
        "Host name of the VPC load balancer",
        facts,
    ));
    module.main(resource(
        "ibm_cis_dns_record",
        "bundle_endpoint",
        body()
            .add_attribute(("count", count_when_set("bundle_endpoint_load_balancer_hostname")))
            .add_attribute(("cis_id", var("cis_id")))
            .add_attribute(("domain_id", var("cis_domain_id")))
            .add_attribute(("name", host))
            .add_attribute(("type", "CNAME"))
            .add_attribute(("content", var("bundle_endpoint_load_balancer_hostname")))
            .add_attribute(("ttl", 300)),
    ));
    module.output(super::bundle_endpoint_address_output(
        "hostname",
        "bundle_endpoint_load_balancer_hostname",
        facts,
    ));
    module.output(Output::new(
        "bundle_endpoint_dns_name",
        "DNS name of the SPIRE bundle endpoint (null until its record exists).",
        one_of("ibm_cis_dns_record", "bundle_endpoint", "name"),
    ));
}
