process PREPARE {
    tag "${meta.id}"
    label 'process_medium'

    conda "${moduleDir}/../../../containers/environment.yml"
    container "${params.container}"

    input:
    tuple val(meta), path(fasta, stageAs: 'input/*')

    output:
    tuple val(meta), path("shards/*.nuc.fa"), path("shards/*.prot.fa"), emit: shards, optional: true
    tuple val(meta), path("shards/reads.tsv")                          , emit: reads
    tuple val(meta), path("shards/manifest.json")                      , emit: manifest
    path "versions.yml"                                                , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args   = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    virnucpro prepare \\
        ${fasta} \\
        --outdir shards \\
        --prefix ${prefix} \\
        --quiet \\
        ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        virnucpro: \$(virnucpro --version | sed 's/^virnucpro //')
    END_VERSIONS
    """

    stub:
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    mkdir -p shards
    touch shards/${prefix}_0001.nuc.fa shards/${prefix}_0001.prot.fa
    touch shards/${prefix}_0002.nuc.fa shards/${prefix}_0002.prot.fa
    printf 'read_id\\n' > shards/reads.tsv
    echo '{}' > shards/manifest.json

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        virnucpro: \$(virnucpro --version 2>/dev/null | sed 's/^virnucpro //')
    END_VERSIONS
    """
}
