// The input of the policy checker. The compiler core elaborates the source
// into plan-shaped data (instances, channels, exposures with resolved ids) and
// hands it here together with the policy rules and the label order; the policy
// checker never looks at names or scopes itself beyond the rule's `scope`.

import type { Diagnostic, PolicyRule, Span } from '@mcl/language';
import type { PlanChannel, PlanCheck, PlanEgress, PlanExposure, PlanInstance, PlanResources, PlanTarget, PlanTemplate } from '@mcl/plan';

export interface SourceRef {
  file: string;
  span: Span;
}

export interface ScopedRule {
  rule: PolicyRule;
  /** File holding the rule (spans in `rule` are into this file). */
  file: string;
  /**
   * Instance-id prefix of the system the rule was written in: "" for the root
   * system, "shop" for a rule inside a system instantiated as `shop`. A name
   * `x` in the rule means the instance `scope + "." + x` (or `x` when the scope
   * is empty); when that id is a nested system, it stands for every instance below it.
   */
  scope: string;
}

export interface LabelOrder {
  /** Every declared label, sorted. */
  labels: string[];
  /** Declared `lower < higher` pairs (not closed transitively). */
  edges: [string, string][];
  /** Where each label was first declared, for diagnostics. */
  declaredAt: Record<string, SourceRef>;
}

export interface PolicyInput {
  target: PlanTarget;
  /** A deploy to several targets: all of them (each instance's `target` names one); capacity is checked per target. */
  targets?: PlanTarget[];
  templates: PlanTemplate[];
  instances: PlanInstance[];
  channels: PlanChannel[];
  exposures: PlanExposure[];
  /** The egresses (absent or empty when there are none). */
  egresses?: PlanEgress[];
  rules: ScopedRule[];
  /**
   * The component port behind each export of each nested system, by
   * `<system id>.<export name>` (`site.api` -> `site.web`, `http`). Rules name
   * a nested system's ports by export; without this map they can name none.
   */
  exports?: Record<string, { instance: string; port: string }>;
  labels: LabelOrder;
  /** Where each instance (by id), channel (by id) and exposure (by host port, as a string) was declared. */
  origins: {
    instances: Record<string, SourceRef>;
    channels: Record<string, SourceRef>;
    exposures: Record<string, SourceRef>;
    /** Where each egress was declared, by its scoped name. */
    egresses?: Record<string, SourceRef>;
    /** The `label` member that gave an instance its label, when there is one. */
    labels: Record<string, SourceRef>;
    /** The `deploy`/`target` declaration the host capacity came from. */
    target?: SourceRef;
  };
}

export interface PolicyResult {
  checks: PlanCheck[];
  resources: PlanResources;
  diagnostics: Diagnostic[];
}
