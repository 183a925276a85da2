-- description: Local status vocabulary to canonical state: the local_status_map seed (or the file named by ESIM_RECON_LOCAL_STATUS_MAP), plus every canonical state name mapping to itself unless the file says otherwise. Keys are lower-cased and trimmed.
-- materialized: table
-- unique_key: local_status
-- state_columns: canonical_state
with

local_status_map as (
    select * from seeds.local_status_map
),

canonical_states as (
    select * from seeds.canonical_states
),

mapped as (
    select
        lower(trim(local_status)) as local_status,
        -- A file with two targets for one status is ambiguous; the smallest name wins.
        min(lower(trim(canonical_state))) as canonical_state,
        'file' as mapping_source
    from local_status_map
    where nullif(trim(local_status), '') is not null
    group by 1
),

identity as (
    select
        lower(canonical_states.state) as local_status,
        lower(canonical_states.state) as canonical_state,
        'canonical name' as mapping_source
    from canonical_states
    left join mapped on mapped.local_status = lower(canonical_states.state)
    where mapped.local_status is null
),

final as (
    select * from mapped
    union all
    select * from identity
)

select * from final
