/**
 * The vocabulary of the pure core. Nothing here knows about HTTP, files, clocks or
 * Kubernetes clients: the admission layer translates requests into these shapes and
 * the adapters (view, load source, ledger) supply the facts.
 */

/** How a policy acts on growth beyond its allowance. */
export type Mode = 'enforce' | 'clamp' | 'audit';

/** What to do when a fact the decision needs is not available. */
export type OnUnavailable = 'hold' | 'caps' | 'deny';

/** Limits of one policy; an absent field does not apply. */
export interface Limits {
  readonly headroom?: number | undefined;
  readonly perWorkload?: number | undefined;
  readonly perFamily?: number | undefined;
  readonly workloadsPerFamily?: number | undefined;
  readonly step?: number | undefined;
  readonly cronJobOverlap?: number | undefined;
  /** Instances the family may add within a sliding window. */
  readonly rate?: { readonly instances: number; readonly perMs: number } | undefined;
}

/** The name of a limit, as it appears in messages, causes, logs and metrics. */
export type LimitName =
  | 'need'
  | 'perWorkload'
  | 'perFamily'
  | 'workloadsPerFamily'
  | 'step'
  | 'rate'
  | 'podServiceAccounts'
  | 'reservedAnnotations'
  | 'clones'
  | 'onUnavailable'
  | 'freeze'
  | 'justification';

/** A loaded, validated policy. */
export interface Policy {
  readonly name: string;
  readonly mode: Mode;
  readonly agents: {
    readonly serviceAccounts: readonly string[];
    readonly users: readonly string[];
    readonly groups: readonly string[];
  };
  readonly namespaces?: readonly string[] | undefined;
  readonly need: {
    readonly static?: number | undefined;
    readonly min?: number | undefined;
    readonly max?: number | undefined;
    readonly onUnavailable: OnUnavailable;
    readonly prometheus?:
      | { readonly query: string; readonly targetPerInstance?: number | undefined; readonly latencyTarget?: number | undefined }
      | undefined;
    readonly metricsApi?: { readonly targetCpuUtilization: number } | undefined;
    readonly hpa?: Readonly<Record<string, never>> | undefined;
  };
  readonly limits: Limits;
  /** Limits that replace `limits` after the family lost instances within the window. */
  readonly underPressure?: { readonly windowMs: number; readonly limits: Limits } | undefined;
  /** How clones of family members are judged; absent means not allowed, no images ignored. */
  readonly clones?: { readonly allowed: boolean; readonly ignoreImages: readonly string[] } | undefined;
  readonly podServiceAccounts?: readonly string[] | undefined;
  /** When growth must carry a fresh `replica-guard.io/justification`; absent: never. */
  readonly justification?: { readonly required: 'beyondNeed' | 'always' } | undefined;
  /** Where the policy was read from, for messages. */
  readonly source: { readonly file: string; readonly document: number };
}

/** The identity a request is made by, once recognised as an agent. */
export interface AgentIdentity {
  /** The Kubernetes user name, e.g. `system:serviceaccount:agents:agent-1`. */
  readonly username: string;
  /** Set when the identity is a service account. */
  readonly serviceAccount?: { readonly namespace: string; readonly name: string } | undefined;
  /**
   * The groups the request was authenticated with (`userInfo.groups`): what a
   * SubjectAccessReview asks about besides the user name, since RBAC often grants to groups.
   */
  readonly groups?: readonly string[] | undefined;
}

/**
 * How potential instances derive from the steady count: a Deployment's surge (a fixed
 * number or a percentage rounded up, as the Deployment controller resolves it) or a
 * CronJob's overlapping runs.
 */
export type ExtraInstances =
  | { readonly type: 'none' }
  | { readonly type: 'surge-fixed'; readonly instances: number }
  | { readonly type: 'surge-percent'; readonly percent: number }
  | { readonly type: 'overlap'; readonly runs: number }
  /** A CronJob with `concurrencyPolicy: Allow`: runs overlap up to the policy's `cronJobOverlap`. */
  | { readonly type: 'cronjob-allow' };

/** What a workload is asked to run, counted at its top owner. */
export interface InstanceCount {
  /** The steady count (DESIGN.md): replicas, a Job's running pods, eligible nodes, 1 for a Pod. */
  readonly steady: number;
  readonly extra: ExtraInstances;
}

/** Identifies a workload: its UID when the object exists, else kind/namespace/name. */
export interface WorkloadRef {
  readonly group: string;
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
  readonly uid?: string | undefined;
}

/** Where a clamp writes the new steady count in the object the request carries. */
export interface ClampTarget {
  /** JSON pointer of the field that holds the steady count. */
  readonly path: string;
  /** Whether the field is present: absent fields are patched with `add`. */
  readonly present: boolean;
  /** The lowest value the field accepts (an HPA's maxReplicas is at least 1). */
  readonly minimum?: number | undefined;
  /** Further fields to lower to the same value when they exceed it (an HPA's minReplicas). */
  readonly companions?: readonly { readonly path: string; readonly value: number }[] | undefined;
}

/** A write, as the core sees it: the counts before and after, at the top owner. */
export interface WorkloadChange {
  readonly operation: 'CREATE' | 'UPDATE' | 'DELETE';
  readonly ref: WorkloadRef;
  /** Counts before the write; null on CREATE. */
  readonly before: InstanceCount | null;
  /** Counts after the write; null on DELETE. */
  readonly after: InstanceCount | null;
  /** True when the write creates a workload (not an HPA, which bounds one). */
  readonly createsWorkload: boolean;
  /** Null when the count cannot be lowered by a patch (a Pod, a DaemonSet). */
  readonly clamp: ClampTarget | null;
  /** Service accounts the pods this write defines run as, when it defines pods and changed them. */
  readonly podServiceAccounts: readonly PodServiceAccount[];
  /** `replica-guard.io/*` keys the write adds, changes or removes, other than the justification. */
  readonly reservedAnnotationChanges: readonly string[];
  /** Facts that counting needed and did not have (a Scale's parent never seen). */
  readonly unknownFacts: readonly string[];
  /** For an HPA: the workload it scales, in its namespace. */
  readonly scaleTarget?: { readonly group: string; readonly kind: string; readonly name: string } | undefined;
  /** The pods the new object defines (all its templates), when it defines any. */
  readonly pods?: { readonly serviceAccounts: readonly string[]; readonly fingerprints: readonly WorkloadFingerprint[] } | undefined;
  /** Set when the new count itself cannot be known (a DaemonSet without nodes): never allowed to grow. */
  readonly uncountable: string | undefined;
  /** The justification the write carries (a Scale: its parent's), and whether this write changed it. */
  readonly justification?: { readonly text: string | undefined; readonly changed: boolean; readonly from: 'object' | 'parent' } | undefined;
}

/** A service account a pod template runs as, with the namespace its pods live in. */
export interface PodServiceAccount {
  readonly namespace: string;
  readonly name: string;
  /** Where in the object the template sits, for messages (`spec.template.spec`). */
  readonly field: string;
}

/** The need of a workload, as the load source reports it. */
export type NeedFact =
  | { readonly kind: 'measured'; readonly value: number; readonly source: string }
  | { readonly kind: 'unmeasured' }
  | { readonly kind: 'unavailable'; readonly reason: string };

/** The family the workload belongs to, excluding the workload itself. */
export interface FamilyFact {
  readonly workloads: number;
  readonly potential: number;
}

/** Everything one policy's judgement depends on besides the change and the policy. */
export interface PolicyFacts {
  readonly need: NeedFact;
  /** Undefined when the family is unknown. */
  readonly family: FamilyFact | undefined;
  /**
   * Potential instances the family added (reservations included) within a window, for
   * the rate limit in force; undefined when the ledger could not tell.
   */
  readonly rateUsed?: ((windowMs: number) => number) | undefined;
  /** True when the family lost instances within the policy's `underPressure.window`. */
  readonly underPressure?: boolean | undefined;
  /**
   * The family member a new workload clones (same fingerprint, image not ignored), as
   * `Kind namespace/name`; undefined when it clones none.
   */
  readonly clonedMember?: string | undefined;
  /** The agent's reasoning for this growth and whether it is fresh; undefined: not looked at. */
  readonly justification?: JustificationFact | undefined;
}

/** The `replica-guard.io/justification` a growth carries, and whether it is fresh for it. */
export interface JustificationFact {
  /** The text; undefined when absent or blank. */
  readonly text: string | undefined;
  /** Changed in this request, or different from the one the family's last recorded growth carried. */
  readonly fresh: boolean;
  /** Where the text was read: the object written, or a Scale's parent workload. */
  readonly from: 'object' | 'parent';
}

/** A pod-template fingerprint, as kept for a workload (see core/fingerprint.ts). */
export interface WorkloadFingerprint {
  readonly key: string;
  readonly image: string;
}

/** What is known of one workload: enough to count it and to place it in a family. */
export interface WorkloadSnapshot {
  readonly ref: WorkloadRef;
  /** Counted at the object itself; an HPA's count is its maxReplicas. */
  readonly count: InstanceCount;
  /** Service account names its pods run as. */
  readonly serviceAccounts: readonly string[];
  /** Fingerprints of its pod template's containers: what marks a clone. */
  readonly fingerprints: readonly WorkloadFingerprint[];
  /** For an HPA: the workload it scales, in its namespace. */
  readonly scaleTarget?: { readonly group: string; readonly kind: string; readonly name: string } | undefined;
  /** The controller owning it (a Deployment's ReplicaSet, a CronJob's Job): then not a top owner. */
  readonly controllerUid?: string | undefined;
  /** Its `replica-guard.io/justification` annotation, when it has one: what a Scale of it is judged by. */
  readonly justification?: string | undefined;
}
