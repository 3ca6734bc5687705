// Sidecars from the API server are checked against Istio's own CRD schema (the
// @kubernetes-models/istio models are generated from Istio's crd-all.gen.yaml): types,
// enums such as captureMode, and required fields such as egress[].hosts. A real API
// server enforces the same schema on write; this catches what an older CRD let in.
import { Sidecar as SidecarV1 } from '@kubernetes-models/istio/networking.istio.io/v1/Sidecar';
import { Sidecar as SidecarV1alpha3 } from '@kubernetes-models/istio/networking.istio.io/v1alpha3/Sidecar';
import { Sidecar as SidecarV1beta1 } from '@kubernetes-models/istio/networking.istio.io/v1beta1/Sidecar';
import { objectName, type Sidecar } from '../../policy/k8s.js';

const MODELS: Record<string, new (data: object) => { validate(): void }> = {
  'networking.istio.io/v1': SidecarV1,
  'networking.istio.io/v1beta1': SidecarV1beta1,
  'networking.istio.io/v1alpha3': SidecarV1alpha3,
};

/** Why this Sidecar is skipped, or null when it matches Istio's schema. */
export function checkSidecar(sidecar: Sidecar): string | null {
  const Model = MODELS[sidecar.apiVersion];
  const name = `Sidecar ${objectName(sidecar.metadata)}`;
  if (!Model) return `${name}: apiVersion ${sidecar.apiVersion} is not a Sidecar version sluice reads`;
  try {
    new Model(sidecar as object).validate();
    return null;
  } catch (e) {
    return `${name}: does not match Istio's Sidecar schema (${(e as Error).message.split('\n')[0]}); fix the object, it is ignored until then`;
  }
}
