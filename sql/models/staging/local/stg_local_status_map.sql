with

{#- ESIM_RECON_LOCAL_STATUS_MAP names a CSV (local_status,canonical_state) replacing the seed. -#}
{%- set override = env_var('ESIM_RECON_LOCAL_STATUS_MAP', '') | trim %}
local_status_map as (
    {%- if override %}
    select local_status, canonical_state
    from read_csv(
        {{ dbt.string_literal(override) }},
        header = true, all_varchar = true, delim = ',', quote = '"', escape = '"'
    )
    {%- else %}
    select * from {{ ref('local_status_map') }}
    {%- endif %}
),

canonical_states as (
    select * from {{ ref('canonical_states') }}
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
