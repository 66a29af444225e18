//! Terraform for each cloud site: one root module per site under `terraform/<site>/`.
//!
//! Every cloud site gets `versions.tf` (Terraform and provider constraints), `backend.tf` (the
//! state backend as a partial configuration: its settings come from `terraform init
//! -backend-config=...`), `providers.tf`, `variables.tf` (typed and described; secrets `sensitive`
//! and without defaults), `terraform.tfvars.example` (every variable without a default, described),
//! `main.tf` (the managed Kubernetes cluster, an on-demand node pool for the mesh's control plane
//! and, on a spot site, a tainted spot pool for the agents, what the site's manifests need from
//! the cloud, and the bundle endpoint's DNS record) and `outputs.tf` (cluster name and endpoint, a
//! kubeconfig command, the command that prints the bundle endpoint's load balancer address, its
//! DNS name). With
//! `networking.type: vpn`, `vpn.tf` holds this site's side of a site-to-site VPN to every site it
//! must reach (see [`vpn`]). On-prem sites get nothing: weave does not provision their cluster.
//!
//! Architecture invariant: the network is brought by the user. Every module takes the VPC, VNet
//! and subnet identifiers as variables (what each needs is in its variable descriptions), because
//! platform teams keep networks in their own state with their own lifecycle, and a mesh must not
//! own them.
//!
//! Files are hcl-rs bodies printed by hcl-rs's formatter and given the two touches `terraform fmt`
//! adds that it lacks (see [`format`]). Nothing here builds HCL text by hand.

mod aws;
mod azure;
mod format;
mod gcp;
mod ibm;
mod oracle;
mod vpn;

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use hcl::expr::{
    BinaryOp, BinaryOperator, Conditional, Expression, ForExpr, FuncCall, TemplateExpr, Traversal,
    TraversalOperator, UnaryOp, UnaryOperator, Variable as VariableName,
};
use hcl::structure::BlockLabel;
use hcl::template::Template;
use hcl::{Block, Body, Identifier};

pub use format::format_body;

use super::{EmitContext, Sink, Target};
use crate::model::{Provider, Site};

pub const TARGET: Target = Target {
    name: "terraform",
    description: "Terraform for each cloud site's cluster, DNS and VPN",
    emit,
    split: None,
};

/// The Terraform version every module requires (`startswith`, `strcontains` and `endswith` are 1.5).
pub const REQUIRED_TERRAFORM_VERSION: &str = ">= 1.5.0";

/// Nodes of the on-demand pool of a spot site: the mesh's control plane (SPIRE server, controller
/// manager, operators) runs there, and two nodes let one be drained without stopping it.
pub(crate) const SPOT_SITE_SYSTEM_NODES: u32 = 2;

/// Adds a cluster's node pools to `main.tf`, as resources of `kind`: the on-demand pool `system`
/// (`cluster.nodes`, or [`SPOT_SITE_SYSTEM_NODES`] on a spot site) and, on a spot site, the pool
/// `spot_name` of `cluster.nodes` spot nodes. `pool(name, nodes, spot)` renders one pool.
pub(crate) fn node_pools(
    facts: &SiteFacts<'_>,
    module: &mut Module,
    kind: &str,
    spot_name: &str,
    pool: impl Fn(&str, u32, bool) -> hcl::structure::BlockBuilder,
) {
    let (spot, nodes) = (facts.site.cluster.spot, facts.site.cluster.nodes);
    let system_nodes = if spot { SPOT_SITE_SYSTEM_NODES } else { nodes };
    module.main(resource(kind, "system", pool("system", system_nodes, false)));
    if spot {
        module.main(resource(kind, spot_name, pool(spot_name, nodes, true)));
    }
}

/// `hashicorp/kubernetes`, for what a site's Terraform creates inside its cluster (EKS's default
/// StorageClass): the release line the provider-schema check covers.
pub(crate) const KUBERNETES_PROVIDER_VERSION: &str = "~> 2.38";

pub use vpn::{PeerInput, peer_inputs};

fn emit(context: &EmitContext<'_>, sink: &mut dyn Sink) -> io::Result<()> {
    for (site_index, site) in context.topology.sites.iter().enumerate() {
        for (file_name, text) in site_files(context, site_index)? {
            sink.put(format!("terraform/{}/{}", site.name, file_name), text.into_bytes())?;
        }
    }
    Ok(())
}

/// The Terraform files of one site, in file-name order; none for a site weave does not provision.
pub fn render_site(context: &EmitContext<'_>, site_index: usize) -> io::Result<Vec<(&'static str, String)>> {
    site_files(context, site_index)
}

fn site_files(context: &EmitContext<'_>, site_index: usize) -> io::Result<Vec<(&'static str, String)>> {
    let Some(site) = context.topology.sites.get(site_index) else { return Ok(Vec::new()) };
    let facts = SiteFacts { context, site, index: site_index };
    let mut module = Module::default();
    match site.provider {
        Provider::Aws => aws::cluster(&facts, &mut module),
        Provider::Gcp => gcp::cluster(&facts, &mut module),
        Provider::Azure => azure::cluster(&facts, &mut module),
        Provider::Oracle => oracle::cluster(&facts, &mut module),
        Provider::Ibm => ibm::cluster(&facts, &mut module),
        Provider::Onprem => return Ok(Vec::new()),
    }
    vpn::site_side(&facts, &mut module);
    module
        .into_files()
        .into_iter()
        .map(|(file_name, file)| {
            match &file {
                File::Hcl(body) => format_body(body),
                File::VariablesExample(entries) => variables_example(entries),
            }
            .map(|text| (file_name, text))
            .map_err(|error| io::Error::other(error.to_string()))
        })
        .collect()
}

/// What the provider modules read about the site they are writing.
pub(crate) struct SiteFacts<'a> {
    pub context: &'a EmitContext<'a>,
    pub site: &'a Site,
    /// The site's index in `Topology::sites`.
    pub index: usize,
}

impl SiteFacts<'_> {
    pub fn cluster_name(&self) -> &str {
        &self.site.cluster.name
    }

    /// The region (every cloud site has one; the site name stands in should it be missing).
    pub fn region(&self) -> &str {
        self.site.region_or_name()
    }

    /// The host name of this site's SPIRE bundle endpoint, when federation publishes one for it.
    pub fn bundle_endpoint_host(&self) -> Option<&str> {
        let federation = &self.context.topology.federation;
        if !federation.enabled {
            return None;
        }
        federation
            .bundle_endpoint(&self.site.name)
            .map(|endpoint| endpoint.host())
            .filter(|host| !host.is_empty())
    }

    /// The node type, or the provider's default when the model has none.
    pub fn node_type(&self) -> &str {
        self.site.cluster.node_type.as_deref().or(self.site.provider.default_node_type()).unwrap_or_default()
    }

    /// The Kubernetes version as written (`1.31`, or `1.31.2` with a patch).
    pub fn kubernetes_version(&self) -> &str {
        &self.site.cluster.kubernetes_version
    }

    /// The Kubernetes minor version (`1.31` of `1.31.2`), for clouds that take nothing finer.
    pub fn kubernetes_minor_version(&self) -> &str {
        let version = self.kubernetes_version();
        match version.match_indices('.').nth(1) {
            Some((second_dot, _)) => &version[..second_dot],
            None => version,
        }
    }

    /// Labels every resource of the site carries, as (key, value), sorted by key.
    pub fn labels(&self) -> Vec<(&'static str, String)> {
        vec![
            ("managed-by", "weave".to_owned()),
            ("mesh", self.context.topology.mesh.name.clone()),
            ("site", self.site.name.clone()),
        ]
    }

    /// The labels as an HCL object (`{ managed-by = "weave", ... }`).
    pub fn labels_object(&self) -> Expression {
        object(self.labels().into_iter().map(|(key, value)| (key, Expression::from(value))))
    }
}

/// One site's Terraform root module, collected per file before it is printed.
#[derive(Default)]
pub(crate) struct Module {
    required_providers: BTreeMap<&'static str, (&'static str, &'static str)>,
    backend: Option<&'static str>,
    providers: Vec<Block>,
    variables: Vec<Variable>,
    variable_names: BTreeSet<String>,
    main: Vec<Block>,
    vpn: Vec<Block>,
    outputs: Vec<Output>,
}

impl Module {
    /// Adds a provider to `required_providers` (`name = { source, version }`).
    pub fn require_provider(&mut self, name: &'static str, source: &'static str, version: &'static str) {
        self.required_providers.insert(name, (source, version));
    }

    pub fn provider(&mut self, block: Block) {
        self.providers.push(block);
    }

    /// The state backend type (`s3`, `gcs`, `azurerm`), written as a partial configuration.
    pub fn backend(&mut self, backend_type: &'static str) {
        self.backend = Some(backend_type);
    }

    /// Declares an input variable; a second declaration of the same name is ignored.
    pub fn variable(&mut self, variable: Variable) {
        if self.variable_names.insert(variable.name.clone()) {
            self.variables.push(variable);
        }
    }

    /// Adds a block (resource, data source or locals) to `main.tf`.
    pub fn main(&mut self, block: Block) {
        self.main.push(block);
    }

    /// Adds a block to `vpn.tf`.
    pub fn vpn(&mut self, block: Block) {
        self.vpn.push(block);
    }

    pub fn output(&mut self, output: Output) {
        self.outputs.push(output);
    }

    fn into_files(self) -> Vec<(&'static str, File)> {
        let mut required_providers = Block::builder("required_providers");
        for (name, (source, version)) in &self.required_providers {
            required_providers = required_providers.add_attribute((
                *name,
                object([("source", Expression::from(*source)), ("version", (*version).into())]),
            ));
        }
        let versions = Block::builder("terraform")
            .add_attribute(("required_version", REQUIRED_TERRAFORM_VERSION))
            .add_block(required_providers.build())
            .build();
        let mut files = Vec::new();
        if let Some(backend_type) = self.backend {
            let backend = Block::builder("terraform")
                .add_block(Block::builder("backend").add_label(backend_type).build())
                .build();
            files.push(("backend.tf", File::Hcl(Body::from(vec![backend]))));
        }
        files.extend([
            ("main.tf", File::Hcl(Body::from(self.main))),
            (
                "outputs.tf",
                File::Hcl(Body::from(self.outputs.iter().map(Output::to_block).collect::<Vec<_>>())),
            ),
            ("providers.tf", File::Hcl(Body::from(self.providers))),
            (
                "terraform.tfvars.example",
                File::VariablesExample(
                    self.variables
                        .iter()
                        .filter(|variable| variable.default.is_none() || variable.copied_from.is_some())
                        .map(Variable::example_entry)
                        .collect(),
                ),
            ),
            (
                "variables.tf",
                File::Hcl(Body::from(self.variables.iter().map(Variable::to_block).collect::<Vec<_>>())),
            ),
            ("versions.tf", File::Hcl(Body::from(vec![versions]))),
        ]);
        if !self.vpn.is_empty() {
            files.push(("vpn.tf", File::Hcl(Body::from(self.vpn))));
        }
        files
    }
}

/// A file of the module before printing.
enum File {
    Hcl(Body),
    /// `terraform.tfvars.example`: one entry per variable without a default.
    VariablesExample(Vec<ExampleEntry>),
}

/// A variable without a default as `terraform.tfvars.example` lists it.
struct ExampleEntry {
    name: String,
    description: String,
    value: Expression,
    sensitive: bool,
    /// For a value copied from a peer's outputs: where it comes from.
    copied_from: Option<String>,
}

/// Lines of a comment (`# ...`) holding `text`, wrapped before 100 columns.
fn comment_lines(text: &str, out: &mut String) {
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() > 1 && line.len() + 1 + word.len() > 100 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
}

/// `terraform.tfvars.example`: each variable without a default, its description as a comment and
/// an example value; a sensitive one only as a comment that says to set it through the environment,
/// so that secrets stay out of files.
fn variables_example(entries: &[ExampleEntry]) -> Result<String, hcl::Error> {
    let mut out = String::from(
        "# Copy to terraform.tfvars and replace the example values: every variable without a default is\n\
         # listed. Sensitive variables are only named here; set them in the environment\n\
         # (TF_VAR_<name>) or from a secret store, never in a file.\n",
    );
    for entry in entries {
        out.push('\n');
        comment_lines(&entry.description, &mut out);
        if let Some(source) = &entry.copied_from {
            comment_lines(source, &mut out);
        }
        if entry.sensitive {
            out.push_str("# ");
            out.push_str(&entry.name);
            out.push_str(": sensitive, set TF_VAR_");
            out.push_str(&entry.name);
            out.push('\n');
        } else {
            let body = Body::builder().add_attribute((entry.name.as_str(), entry.value.clone())).build();
            out.push_str(&format_body(&body)?);
        }
    }
    Ok(out)
}

/// An input variable: typed and described; a secret is `sensitive` and has no default.
pub(crate) struct Variable {
    name: String,
    type_expression: Expression,
    description: String,
    default: Option<Expression>,
    sensitive: bool,
    validations: Vec<(Expression, String)>,
    example: Option<Expression>,
    copied_from: Option<String>,
}

impl Variable {
    pub fn new(
        name: impl Into<String>,
        type_expression: Expression,
        description: impl Into<String>,
    ) -> Variable {
        Variable {
            name: name.into(),
            type_expression,
            description: description.into(),
            default: None,
            sensitive: false,
            validations: Vec::new(),
            example: None,
            copied_from: None,
        }
    }

    /// The value `terraform.tfvars.example` shows for a variable without a default (else one
    /// derived from its type: an empty string or list, 0, false).
    pub fn example(mut self, value: impl Into<Expression>) -> Variable {
        self.example = Some(value.into());
        self
    }

    /// A value copied from a peer's outputs once the peer is applied (`source` says from where):
    /// `terraform.tfvars.example` lists it with its default and the note, although it has one.
    pub fn copied_from(mut self, source: impl Into<String>) -> Variable {
        self.copied_from = Some(source.into());
        self
    }

    fn example_entry(&self) -> ExampleEntry {
        let default = self.copied_from.as_ref().and(self.default.clone());
        let value = default.or_else(|| self.example.clone()).unwrap_or_else(|| match &self.type_expression {
            Expression::Variable(name) if name.as_str() == "number" => 0.into(),
            Expression::Variable(name) if name.as_str() == "bool" => false.into(),
            Expression::Variable(_) => "".into(),
            _ => Expression::Array(Vec::new()),
        });
        ExampleEntry {
            name: self.name.clone(),
            description: self.description.clone(),
            value,
            sensitive: self.sensitive,
            copied_from: self.copied_from.clone(),
        }
    }

    pub fn default(mut self, value: impl Into<Expression>) -> Variable {
        self.default = Some(value.into());
        self
    }

    /// Marks the value secret: Terraform redacts it in plans and output.
    pub fn sensitive(mut self) -> Variable {
        self.sensitive = true;
        self
    }

    pub fn validation(mut self, condition: Expression, error_message: impl Into<String>) -> Variable {
        self.validations.push((condition, error_message.into()));
        self
    }

    fn to_block(&self) -> Block {
        let mut block = Block::builder("variable")
            .add_label(self.name.as_str())
            .add_attribute(("type", self.type_expression.clone()))
            .add_attribute(("description", self.description.as_str()));
        if let Some(default) = &self.default {
            block = block.add_attribute(("default", default.clone()));
        }
        if self.sensitive {
            block = block.add_attribute(("sensitive", true));
        }
        for (condition, error_message) in &self.validations {
            block = block.add_block(
                Block::builder("validation")
                    .add_attribute(("condition", condition.clone()))
                    .add_attribute(("error_message", error_message.as_str()))
                    .build(),
            );
        }
        block.build()
    }
}

/// A root-module output.
pub(crate) struct Output {
    name: String,
    description: String,
    value: Expression,
}

impl Output {
    pub fn new(
        name: impl Into<String>,
        description: impl Into<String>,
        value: impl Into<Expression>,
    ) -> Output {
        Output { name: name.into(), description: description.into(), value: value.into() }
    }

    fn to_block(&self) -> Block {
        Block::builder("output")
            .add_label(self.name.as_str())
            .add_attribute(("description", self.description.as_str()))
            .add_attribute(("value", self.value.clone()))
            .build()
    }
}

/// A resource block: `resource "<kind>" "<name>" { ... }`, with its body from `body`.
pub(crate) fn resource(kind: &str, name: &str, body: hcl::structure::BlockBuilder) -> Block {
    labelled("resource", kind, name, body)
}

/// A data block: `data "<kind>" "<name>" { ... }`.
pub(crate) fn data(kind: &str, name: &str, body: hcl::structure::BlockBuilder) -> Block {
    labelled("data", kind, name, body)
}

fn labelled(keyword: &str, kind: &str, name: &str, body: hcl::structure::BlockBuilder) -> Block {
    let mut block = body.build();
    block.identifier = Identifier::sanitized(keyword);
    block.labels = vec![BlockLabel::from(kind), BlockLabel::from(name)];
    block
}

/// An empty block builder to fill with `.add_attribute` / `.add_block` and hand to [`resource`].
pub(crate) fn body() -> hcl::structure::BlockBuilder {
    Block::builder("body")
}

/// A nested block: `name { ... }`.
pub(crate) fn nested(name: &str) -> hcl::structure::BlockBuilder {
    Block::builder(name)
}

/// A `locals { ... }` block.
pub(crate) fn locals<K: AsRef<str>>(values: impl IntoIterator<Item = (K, Expression)>) -> Block {
    let mut block = Block::builder("locals");
    for (name, value) in values {
        block = block.add_attribute((name.as_ref(), value));
    }
    block.build()
}

/// A `dynamic "<name>" { for_each = ..., content { ... } }` block.
pub(crate) fn dynamic(name: &str, for_each: Expression, content: hcl::structure::BlockBuilder) -> Block {
    let mut content = content.build();
    content.identifier = Identifier::sanitized("content");
    Block::builder("dynamic").add_label(name).add_attribute(("for_each", for_each)).add_block(content).build()
}

/// A reference written as a dotted path of identifiers with optional `[n]` or `[*]` suffixes:
/// `reference("aws_eks_cluster.this.certificate_authority[0].data")`.
pub(crate) fn reference(path: &str) -> Expression {
    let mut segments = path.split('.');
    let root = segments.next().unwrap_or_default();
    let (root_name, root_suffixes) = split_suffixes(root);
    let mut operators = Vec::new();
    push_suffixes(root_suffixes, &mut operators);
    for segment in segments {
        let (name, suffixes) = split_suffixes(segment);
        operators.push(TraversalOperator::GetAttr(Identifier::sanitized(name)));
        push_suffixes(suffixes, &mut operators);
    }
    let root = Expression::Variable(VariableName::sanitized(root_name));
    if operators.is_empty() { root } else { Traversal::new(root, operators).into() }
}

/// `<kind>.<name>.<attribute...>` for resource names built at run time.
pub(crate) fn attribute_of(kind: &str, name: &str, attributes: &[&str]) -> Expression {
    let mut operators = vec![TraversalOperator::GetAttr(Identifier::sanitized(name))];
    operators.extend(
        attributes.iter().map(|attribute| TraversalOperator::GetAttr(Identifier::sanitized(attribute))),
    );
    Traversal::new(Expression::Variable(VariableName::sanitized(kind)), operators).into()
}

fn split_suffixes(segment: &str) -> (&str, &str) {
    match segment.find('[') {
        Some(open) => (&segment[..open], &segment[open..]),
        None => (segment, ""),
    }
}

fn push_suffixes(mut suffixes: &str, operators: &mut Vec<TraversalOperator>) {
    while let Some(rest) = suffixes.strip_prefix('[') {
        let Some(close) = rest.find(']') else { return };
        let inside = &rest[..close];
        if inside == "*" {
            operators.push(TraversalOperator::FullSplat);
        } else if let Ok(index) = inside.parse::<u64>() {
            operators.push(TraversalOperator::Index(index.into()));
        }
        suffixes = &rest[close + 1..];
    }
}

/// `var.<name>`.
pub(crate) fn var(name: &str) -> Expression {
    attribute_of("var", name, &[])
}

/// `local.<name>`.
pub(crate) fn local(name: &str) -> Expression {
    attribute_of("local", name, &[])
}

/// A piece of a quoted template string.
pub(crate) enum Part {
    Text(String),
    Interpolate(Expression),
}

/// Literal text inside a template.
pub(crate) fn text(value: impl Into<String>) -> Part {
    Part::Text(value.into())
}

/// An interpolated expression inside a template (`${...}`).
pub(crate) fn interpolate(expression: impl Into<Expression>) -> Part {
    Part::Interpolate(expression.into())
}

/// A quoted template string such as `"${var.project_id}.svc.id.goog"`.
pub(crate) fn template(parts: impl IntoIterator<Item = Part>) -> Expression {
    let mut built = Template::new();
    for part in parts {
        built = match part {
            // Template's own printing escapes `${` and `%{` but not quotes and backslashes, which a
            // quoted template needs escaped.
            Part::Text(value) => built.add_literal(escape_quoted(&value)),
            Part::Interpolate(expression) => built.add_interpolation(expression),
        };
    }
    TemplateExpr::QuotedString(built.to_string()).into()
}

fn escape_quoted(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for character in value.chars() {
        match character {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// A function call `name(arguments...)`.
pub(crate) fn call(name: &str, arguments: impl IntoIterator<Item = Expression>) -> Expression {
    let mut builder = FuncCall::builder(Identifier::sanitized(name));
    for argument in arguments {
        builder = builder.arg(argument);
    }
    builder.build().into()
}

/// A function call whose last argument is expanded: `name(arguments..., last...)`.
pub(crate) fn call_expanded(name: &str, arguments: impl IntoIterator<Item = Expression>) -> Expression {
    let mut builder = FuncCall::builder(Identifier::sanitized(name));
    for argument in arguments {
        builder = builder.arg(argument);
    }
    builder.expand_final(true).build().into()
}

/// An object `{ key = value, ... }` in the given order.
pub(crate) fn object<K: AsRef<str>>(entries: impl IntoIterator<Item = (K, Expression)>) -> Expression {
    entries.into_iter().map(|(key, value)| (key.as_ref().to_owned(), value)).collect()
}

/// A list of strings.
pub(crate) fn strings<S: AsRef<str>>(values: impl IntoIterator<Item = S>) -> Expression {
    Expression::Array(values.into_iter().map(|value| Expression::from(value.as_ref())).collect())
}

/// A list of expressions.
pub(crate) fn list(values: impl IntoIterator<Item = Expression>) -> Expression {
    Expression::Array(values.into_iter().collect())
}

pub(crate) fn binary(left: Expression, operator: BinaryOperator, right: Expression) -> Expression {
    BinaryOp::new(left, operator, right).into()
}

pub(crate) fn not(expression: Expression) -> Expression {
    UnaryOp::new(UnaryOperator::Not, expression).into()
}

pub(crate) fn conditional(
    condition: Expression,
    when_true: Expression,
    when_false: Expression,
) -> Expression {
    Conditional::new(condition, when_true, when_false).into()
}

/// `[for <name> in <collection> : <value> if <condition>]`.
pub(crate) fn for_list(
    name: &str,
    collection: Expression,
    value: Expression,
    condition: Option<Expression>,
) -> Expression {
    let mut for_expression = ForExpr::new(Identifier::sanitized(name), collection, value);
    if let Some(condition) = condition {
        for_expression = for_expression.with_cond_expr(condition);
    }
    for_expression.into()
}

/// `{ for <name> in <collection> : <key> => <value> if <condition> }`.
pub(crate) fn for_object(
    name: &str,
    collection: Expression,
    key: Expression,
    value: Expression,
    condition: Option<Expression>,
) -> Expression {
    let mut for_expression = ForExpr::new(Identifier::sanitized(name), collection, value).with_key_expr(key);
    if let Some(condition) = condition {
        for_expression = for_expression.with_cond_expr(condition);
    }
    for_expression.into()
}

/// The optional variable that carries the address Kubernetes gives the SPIRE bundle endpoint
/// Service's load balancer (`what`: "Host name of the LoadBalancer", ...). It is known only once the
/// cluster runs the SPIRE server, so it is null on the first apply, and the DNS record that points at
/// it exists once it is set ([`count_when_set`]).
pub(crate) fn load_balancer_address_variable(name: &str, what: &str, facts: &SiteFacts<'_>) -> Variable {
    let namespace = &facts.context.topology.spire.namespace;
    Variable::new(
        name,
        types::string(),
        [
            what,
            " of the SPIRE bundle endpoint Service (namespace ",
            namespace,
            "), known once the cluster runs the SPIRE server. Leave null on the first apply; the DNS \
             record is created when it is set.",
        ]
        .concat(),
    )
    .default(Expression::Null)
}

/// The name of the Service that exposes the SPIRE bundle endpoint (see `emit::k8s::spire`).
pub(crate) const BUNDLE_ENDPOINT_SERVICE: &str = "spire-bundle-endpoint";

/// The output holding the command that prints the address Kubernetes gave the SPIRE bundle
/// endpoint Service's load balancer (`field`: `hostname` or `ip`): the value for `variable` on the
/// apply that creates the DNS record.
pub(crate) fn bundle_endpoint_address_output(field: &str, variable: &str, facts: &SiteFacts<'_>) -> Output {
    let namespace = &facts.context.topology.spire.namespace;
    Output::new(
        "bundle_endpoint_load_balancer_command",
        [
            "Prints the load balancer address of the SPIRE bundle endpoint Service, the value of ",
            variable,
            ".",
        ]
        .concat(),
        [
            "kubectl --namespace ",
            namespace,
            " get service ",
            BUNDLE_ENDPOINT_SERVICE,
            " --output jsonpath={.status.loadBalancer.ingress[0].",
            field,
            "}",
        ]
        .concat(),
    )
}

/// `count = <variable> == null ? 0 : 1`: the resource exists once the optional variable is set.
pub(crate) fn count_when_set(variable: &str) -> Expression {
    conditional(binary(var(variable), BinaryOperator::Eq, Expression::Null), 0.into(), 1.into())
}

/// `one(<kind>.<name>[*].<attribute>)`: the attribute of a resource that has a `count` of 0 or 1.
pub(crate) fn one_of(kind: &str, name: &str, attribute: &str) -> Expression {
    let splat = Traversal::new(
        Expression::Variable(VariableName::sanitized(kind)),
        [
            TraversalOperator::GetAttr(Identifier::sanitized(name)),
            TraversalOperator::FullSplat,
            TraversalOperator::GetAttr(Identifier::sanitized(attribute)),
        ],
    );
    call("one", [splat.into()])
}

/// Terraform type expressions for variables.
pub(crate) mod types {
    use hcl::expr::{Expression, Variable};

    use super::{call, object};

    pub fn string() -> Expression {
        Expression::Variable(Variable::sanitized("string"))
    }

    pub fn number() -> Expression {
        Expression::Variable(Variable::sanitized("number"))
    }

    pub fn bool() -> Expression {
        Expression::Variable(Variable::sanitized("bool"))
    }

    pub fn list_of_strings() -> Expression {
        call("list", [string()])
    }

    /// `list(object({ name = string, subnet_id = string }))` and the like.
    pub fn list_of_objects(fields: &[(&str, Expression)]) -> Expression {
        call("list", [call("object", [object(fields.iter().map(|(name, kind)| (*name, kind.clone())))])])
    }
}

/// An identifier for Terraform names built from a site name (`aws-east` → `aws_east`). Site names
/// are DNS labels, so the mapping is one-to-one.
pub(crate) fn identifier_part(site_name: &str) -> String {
    site_name.replace('-', "_")
}

/// A cloud resource name: the cluster name, `-`, a suffix, cut to `limit` characters without a
/// trailing hyphen (some clouds limit names to 30 or 40 characters).
pub(crate) fn limited_name(cluster_name: &str, suffix: &str, limit: usize) -> String {
    let mut name = String::with_capacity(cluster_name.len() + suffix.len() + 1);
    name.push_str(cluster_name);
    name.push('-');
    name.push_str(suffix);
    let mut cut: String = name.chars().take(limit).collect();
    while cut.ends_with('-') {
        cut.pop();
    }
    cut
}

/// The variable every provider module takes for who may reach the Kubernetes API from the internet,
/// validated to be CIDR blocks other than `0.0.0.0/0`.
pub(crate) fn api_allowed_cidrs_variable(description: &str, require_one: bool) -> Variable {
    let valid_cidrs = call(
        "alltrue",
        [for_list(
            "cidr",
            var("api_allowed_cidrs"),
            binary(
                call("can", [call("cidrhost", [reference("cidr"), 0.into()])]),
                BinaryOperator::And,
                binary(reference("cidr"), BinaryOperator::NotEq, "0.0.0.0/0".into()),
            ),
            None,
        )],
    );
    let mut variable = Variable::new("api_allowed_cidrs", types::list_of_strings(), description)
        .validation(valid_cidrs, "Every entry must be an IPv4 CIDR block, and 0.0.0.0/0 is not allowed.");
    if require_one {
        variable = variable.validation(
            binary(call("length", [var("api_allowed_cidrs")]), BinaryOperator::Greater, 0.into()),
            "Give at least one CIDR block: an empty list would leave the API server open to everyone.",
        );
    }
    variable
}

/// `length(var.api_allowed_cidrs) > 0`.
pub(crate) fn api_public(variable: &str) -> Expression {
    binary(call("length", [var(variable)]), BinaryOperator::Greater, 0.into())
}

#[cfg(test)]
mod tests;
