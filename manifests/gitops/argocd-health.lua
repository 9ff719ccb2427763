-- Argo CD health check for apps/Deployment that knows canary.io.
-- Install it as resource.customizations.health.apps_Deployment in the
-- argocd-cm ConfigMap (see docs/gitops.md). It reads canary.io/phase:
--   Progressing, Paused, Promoting -> Progressing (an analysis in flight;
--     Argo CD would otherwise call a paused Deployment Suspended)
--   RolledBack                     -> Degraded, with the reason
--   Idle, Succeeded, or not opted in -> Argo CD's usual Deployment health
hs = {}
local annotations = {}
if obj.metadata ~= nil and obj.metadata.annotations ~= nil then
  annotations = obj.metadata.annotations
end
local phase = annotations["canary.io/phase"]
local message = annotations["canary.io/message"] or ""

if annotations["canary.io/enabled"] == "true" then
  if phase == "Progressing" or phase == "Paused" or phase == "Promoting" then
    hs.status = "Progressing"
    hs.message = "canary.io " .. phase .. ": " .. message
    return hs
  end
  if phase == "RolledBack" then
    hs.status = "Degraded"
    hs.message = "canary.io RolledBack: " .. message
    return hs
  end
end

-- The usual Deployment health (as Argo CD's built-in check).
if obj.spec ~= nil and obj.spec.paused == true then
  hs.status = "Suspended"
  hs.message = "Deployment is paused"
  return hs
end
local status = obj.status or {}
local generation = obj.metadata.generation or 0
if (status.observedGeneration or 0) < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for rollout to finish: observed deployment generation less than desired generation"
  return hs
end
if status.conditions ~= nil then
  for _, c in ipairs(status.conditions) do
    if c.type == "Progressing" and c.reason == "ProgressDeadlineExceeded" then
      hs.status = "Degraded"
      hs.message = c.message or "Deployment exceeded its progress deadline"
      return hs
    end
  end
end
local replicas = 1
if obj.spec ~= nil and obj.spec.replicas ~= nil then
  replicas = obj.spec.replicas
end
local updated = status.updatedReplicas or 0
local available = status.availableReplicas or 0
local total = status.replicas or 0
if updated < replicas then
  hs.status = "Progressing"
  hs.message = "Waiting for rollout to finish: " .. updated .. " out of " .. replicas .. " new replicas have been updated..."
  return hs
end
if total > updated then
  hs.status = "Progressing"
  hs.message = "Waiting for rollout to finish: " .. (total - updated) .. " old replicas are pending termination..."
  return hs
end
if available < updated then
  hs.status = "Progressing"
  hs.message = "Waiting for rollout to finish: " .. available .. " of " .. updated .. " updated replicas are available..."
  return hs
end
hs.status = "Healthy"
hs.message = message
return hs
