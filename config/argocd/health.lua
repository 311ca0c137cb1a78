-- Argo CD health check for networking.mtu-operator.io/NetworkMTUPolicy.
--
-- The operator reports Ready, Reconciling and Stalled with their kstatus meaning, plus detail
-- conditions. Argo CD passes the object as the global `obj`; the script returns
-- {status = Healthy | Progressing | Degraded, message = ...}.
local hs = {}

local generation = 0
if obj.metadata ~= nil and obj.metadata.generation ~= nil then
  generation = obj.metadata.generation
end
local function waiting(what)
  return string.format("Waiting for the operator to %s generation %d", what, generation)
end

-- Nothing the status says counts until the operator has seen the current spec.
local status = obj.status
if status == nil or status.observedGeneration == nil or status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = waiting("observe")
  return hs
end

-- Index the conditions by type, skipping any that an older generation wrote: those describe
-- a spec that no longer exists.
local conditions = {}
if status.conditions ~= nil then
  for _, c in ipairs(status.conditions) do
    if c.type ~= nil and (c.observedGeneration == nil or c.observedGeneration >= generation) then
      conditions[c.type] = c
    end
  end
end

local function isTrue(t)
  return conditions[t] ~= nil and conditions[t].status == "True"
end

-- The condition's message, or its reason when it has none.
local function say(c)
  if c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return c.reason or ""
end

-- Stalled: the operator cannot progress without a change from a person.
if isTrue("Stalled") then
  local c = conditions["Stalled"]
  hs.status = "Degraded"
  hs.message = (c.reason or "") .. ": " .. (c.message or "")
  return hs
end

-- A node whose NIC MTU differs from the rest: the platform team must act, whatever the
-- operator is doing.
local underlay = conditions["UnderlayConsistent"]
if underlay ~= nil and underlay.status == "False" then
  hs.status = "Degraded"
  hs.message = say(underlay)
  return hs
end

if isTrue("Reconciling") then
  hs.status = "Progressing"
  hs.message = say(conditions["Reconciling"])
  return hs
end

local ready = conditions["Ready"]
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = say(ready)
  if obj.spec ~= nil and obj.spec.mode == "DryRun" and string.sub(hs.message, 1, 6) ~= "DryRun" then
    hs.message = "DryRun: " .. hs.message
  end
  return hs
end

-- Ready False or Unknown with nothing above to explain it, or no current Ready at all: not
-- healthy yet, but nothing says it is broken.
hs.status = "Progressing"
if ready ~= nil then
  hs.message = say(ready)
else
  hs.message = waiting("report Ready for")
end
return hs
