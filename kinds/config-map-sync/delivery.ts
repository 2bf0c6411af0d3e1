/** Why a ConfigMapSync is carried out by its own reconciler: its copies are written with the tenant's rights, in the cluster. */

/** Git mode's answer (the resource is Stalled, reason NotSupportedInGitMode). */
export const NOT_SUPPORTED_CONFIGMAPSYNC = "not supported in git mode: copies are written with the tenant's rights in the cluster; run apply mode for ConfigMapSync";

/** `kiln diff`'s answer instead of a diff. */
export const NOT_SERVER_SIDE_APPLIED = "its copies are written with the tenant's ServiceAccount, not by server-side apply as kiln";
