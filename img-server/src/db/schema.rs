// The tables of migrations/*/ (…_init, `lost` from …_lost_workers, `mails`, `kickstart_sha256`
// from …_kickstart_sha256, `owner`, `builder*`, `user_name`, `scope` from …_owners_scopes), in
// diesel's terms (the same for both backends).

diesel::table! {
    jobs (id) {
        id -> Text,
        kind -> Text,
        state -> Text,
        email -> Text,
        name -> Text,
        imagetype -> Text,
        arch -> Text,
        kickstart -> Text,
        template -> Nullable<Text>,
        platform -> Nullable<Text>,
        overlay -> Text,
        extra_repos -> Text,
        tokenmap -> Text,
        tags -> Text,
        pinned -> Bool,
        error -> Nullable<Text>,
        logfile -> Nullable<Text>,
        image_url -> Nullable<Text>,
        task_id -> Nullable<Text>,
        worker_id -> Nullable<Text>,
        attempts -> Integer,
        lease_until -> Nullable<BigInt>,
        published_at -> Nullable<BigInt>,
        created_at -> BigInt,
        started_at -> Nullable<BigInt>,
        finished_at -> Nullable<BigInt>,
        updated_at -> BigInt,
        lost -> Integer,
        kickstart_sha256 -> Nullable<Text>,
        owner -> Nullable<Text>,
        builder -> Nullable<Text>,
        builder_attempt -> Nullable<Integer>,
    }
}

diesel::table! {
    artifacts (job_id, name) {
        job_id -> Text,
        name -> Text,
        size -> BigInt,
        sha256 -> Text,
    }
}

diesel::table! {
    api_tokens (name) {
        name -> Text,
        hash -> Text,
        created_at -> BigInt,
        user_name -> Text,
        scope -> Text,
    }
}

diesel::joinable!(artifacts -> jobs (job_id));
diesel::allow_tables_to_appear_in_same_query!(jobs, artifacts, api_tokens, mails);

diesel::table! {
    mails (id) {
        id -> Text,
        job_id -> Text,
        kind -> Text,
        recipients -> Text,
        state -> Text,
        attempts -> Integer,
        next_try_at -> BigInt,
        last_error -> Nullable<Text>,
        created_at -> BigInt,
        sent_at -> Nullable<BigInt>,
    }
}

diesel::joinable!(mails -> jobs (job_id));
